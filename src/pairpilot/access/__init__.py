"""Who may do what: identity (JWT), roles and the membership policy."""

from pairpilot.access.authorizer import Authorizer, Grant, MembershipAuthorizer
from pairpilot.access.identity import Identities, Identity
from pairpilot.access.policy import Role

__all__ = ["Authorizer", "Grant", "Identities", "Identity", "MembershipAuthorizer", "Role"]
