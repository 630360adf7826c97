/**
 * Files in and out of the room (issues #13, #24): "Download zip" (`GET export.zip`), "Upload"
 * (text files as JSON to `POST files`, each `.zip` raw to `POST import.zip`) and "Upload
 * folder" (the directory picker: every file with its path in the folder). The server adds
 * the files to the live room; they arrive here through the Y.Doc like anyone's edit.
 */
import type { Api, UploadedFile } from "./api";
import { h } from "./dom";

export interface TransferOptions {
  api: Api;
  roomId: string;
  onError: (what: string, err: unknown) => void;
  /** The files an upload added, by their names in the room. */
  onUploaded: (files: UploadedFile[]) => void;
}

export interface Transfer {
  /** The header's buttons (and the hidden file input). */
  elements: HTMLElement[];
  /** Viewers cannot upload: the button is hidden for them. */
  setEditable: (editable: boolean) => void;
}

/** An object URL is kept this long after the click that starts its download. */
const DOWNLOAD_URL_TTL_MS = 60_000;

/** Uploaded files that are sent as zip archives (the rest are read as text). */
export function isZip(file: File): boolean {
  return /\.zip$/i.test(file.name) || file.type === "application/zip" || file.type === "application/x-zip-compressed";
}

/**
 * A file's text, refusing what is not UTF-8 (File.text() would silently put U+FFFD in place of
 * every bad byte, and the room would get a corrupted copy).
 */
export async function readText(file: File): Promise<string> {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(await file.arrayBuffer());
  } catch (err) {
    throw new Error(`${file.name} is not a UTF-8 text file`, { cause: err });
  }
}

/** Where an uploaded file goes: its path inside a chosen folder, else its name. */
export function uploadPath(file: File): string {
  return file.webkitRelativePath || file.name;
}

/** "Added util.py, main (2).py (from main.py)". */
export function describeUpload(added: UploadedFile[]): string {
  return `Added ${added.map((f) => (f.name === f.source ? f.name : `${f.name} (from ${f.source})`)).join(", ")}`;
}

/** Saves `blob` as `fileName` through a temporary link. */
export function saveBlob(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: fileName, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), DOWNLOAD_URL_TTL_MS);
}

export function mountTransfer(options: TransferOptions): Transfer {
  const { api, roomId } = options;
  const download = h("button", { type: "button", "data-testid": "download-zip", title: "Download every file as a zip" }, "Download zip");
  const upload = h("button", { type: "button", "data-testid": "upload-files", title: "Add text files or a zip to the room", hidden: true }, "Upload");
  const input = h("input", { type: "file", multiple: true, accept: "*", "data-testid": "upload-input", hidden: true, "aria-hidden": "true", tabindex: -1 });
  const uploadFolder = h("button", { type: "button", "data-testid": "upload-folder", title: "Add a whole folder to the room, keeping its paths", hidden: true }, "Upload folder");
  const folderInput = h("input", { type: "file", multiple: true, "data-testid": "upload-folder-input", hidden: true, "aria-hidden": "true", tabindex: -1 });
  folderInput.webkitdirectory = true; // the browser's directory picker: each file has its relative path

  download.addEventListener("click", () => {
    download.disabled = true;
    api.exportZip(roomId).then(
      (blob) => saveBlob(blob, `${roomId}.zip`),
      (err: unknown) => options.onError("Could not download the files", err),
    ).finally(() => { download.disabled = false; });
  });

  const send = async (chosen: File[]): Promise<UploadedFile[]> => {
    const zips = chosen.filter(isZip);
    // Read every text first: nothing is sent unless all of them are text.
    const texts = await Promise.all(chosen.filter((file) => !isZip(file)).map(async (file) => ({ name: uploadPath(file), text: await readText(file) })));
    const added: UploadedFile[] = [];
    if (texts.length > 0) added.push(...await api.uploadFiles(roomId, texts));
    for (const zip of zips) added.push(...await api.importZip(roomId, zip));
    return added;
  };

  const uploadFrom = (picker: HTMLInputElement, button: HTMLButtonElement): void => {
    button.addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      const chosen = [...(picker.files ?? [])];
      picker.value = ""; // choosing the same file again is a new upload
      if (chosen.length === 0) return;
      button.disabled = true;
      send(chosen).then(
        (added) => options.onUploaded(added),
        (err: unknown) => options.onError("Could not upload the files", err),
      ).finally(() => { button.disabled = false; });
    });
  };
  uploadFrom(input, upload);
  uploadFrom(folderInput, uploadFolder);

  return {
    elements: [download, upload, input, uploadFolder, folderInput],
    setEditable(editable) {
      upload.hidden = uploadFolder.hidden = !editable;
    },
  };
}
