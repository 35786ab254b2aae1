//! What an API token may do: scopes, cameras and an expiry, on top of its user's rights.
//!
//! A token is handed to Home Assistant, a script or a wall display; it should open exactly
//! what that needs. Its effective rights are computed on every request as its user's
//! rights *as stored now* narrowed by the token's grant, so a token never grants more than
//! its user has (a demoted user's tokens are demoted with them), and a grant can only
//! narrow.
//!
//! Scopes, each a set of routes (decided by [`required_scope`] from the route tables):
//! - `view`: read — cameras, live, recordings, events, snapshots, WebRTC/MSE live;
//! - `share`: create, list and revoke share links of the cameras it can view;
//! - `cameras`: add, edit, remove and test cameras (an admin's right);
//! - `admin`: everything the admin user can do, tokens and users included.
//!
//! Routes that only make sense for a person in a browser (log in and out, change the
//! password, list or end sessions, first-run setup) refuse every token.

use axum::http::Method;
use serde::{Deserialize, Serialize};

use crate::state::{Access, CurrentUser};
use vigil_auth::Role;

/// One scope of an API token (see the module doc).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read cameras, live, recordings and events.
    View,
    /// Create, list and revoke share links.
    Share,
    /// Add, edit, remove and test cameras.
    Cameras,
    /// Everything the (admin) user can do.
    Admin,
}

impl Scope {
    /// Every scope, in order.
    pub const ALL: [Scope; 4] = [Scope::View, Scope::Share, Scope::Cameras, Scope::Admin];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::View => "view",
            Scope::Share => "share",
            Scope::Cameras => "cameras",
            Scope::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether a user of `role` may hold this scope at all.
    pub fn allowed_for(self, role: Role) -> bool {
        matches!(role, Role::Admin) || matches!(self, Scope::View | Scope::Share)
    }
}

/// What a token was granted when it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Its scopes, sorted, without duplicates.
    pub scopes: Vec<Scope>,
    /// The cameras it is limited to (`None`: all its user may view).
    pub cameras: Option<Vec<String>>,
}

impl Grant {
    /// Whether the grant holds `scope` (`admin` holds every scope).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    /// The stored form of the scopes: names joined by commas.
    pub fn scopes_text(&self) -> String {
        self.scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads the stored scopes; unknown names (from a newer Vigil) are dropped, never
    /// widened into something else.
    pub fn from_stored(scopes: &str, cameras: Option<Vec<String>>) -> Grant {
        let mut s: Vec<Scope> = scopes.split(',').filter_map(Scope::parse).collect();
        s.sort();
        s.dedup();
        Grant { scopes: s, cameras }
    }

    /// The caller a request with this token acts as: `user` (as stored now) narrowed to
    /// the grant. Admin role only with the `admin` or `cameras` scope (the routes then
    /// still check which); cameras the intersection of the user's and the token's.
    pub fn narrow(&self, user: CurrentUser) -> CurrentUser {
        let admin = user.is_admin() && (self.has(Scope::Admin) || self.has(Scope::Cameras));
        let cameras = match (user.cameras, &self.cameras, user.role) {
            // An admin sees every camera: the token's list is the limit.
            (_, Some(t), Role::Admin) => Some(t.clone()),
            (None, t, _) => t.clone(),
            (Some(u), None, _) => Some(u),
            (Some(u), Some(t), _) => Some(u.into_iter().filter(|c| t.contains(c)).collect()),
        };
        // A camera-limited token is never an admin: admin routes would bypass the list.
        let role = if admin && self.cameras.is_none() {
            Role::Admin
        } else {
            Role::Viewer
        };
        CurrentUser {
            name: user.name,
            role,
            cameras,
        }
    }
}

/// The scope a token needs for a route (`method`, its path template as declared in the
/// route tables, and its access level), or `None` when no token may call it.
pub fn required_scope(method: &Method, path: &str, access: Access) -> Option<Scope> {
    // A person's own account and browser sessions: never a token.
    const PERSONAL: [&str; 8] = [
        "/api/login",
        "/api/login/second-factor",
        "/api/logout",
        "/api/setup",
        "/api/account/password",
        "/api/sessions",
        "/api/sessions/{id}",
        "/api/share/open",
    ];
    // ... and the second factors of the account (enrolling, removing, recovery codes).
    if PERSONAL.contains(&path) || path.starts_with("/api/account/") {
        return None;
    }
    let read = *method == Method::GET || *method == Method::HEAD;
    match access {
        // Public and share-link routes do not look at the caller; a token changes nothing.
        Access::Public | Access::Share => Some(Scope::View),
        Access::Admin => {
            let camera_admin = path == "/api/cameras"
                || path == "/api/cameras/test"
                || path == "/api/cameras/{name}";
            Some(if camera_admin && !read {
                Scope::Cameras
            } else {
                Scope::Admin
            })
        }
        Access::User => {
            if path.starts_with("/api/shares") {
                Some(Scope::Share)
            } else if path.starts_with("/api/tokens") {
                // Minting or deleting tokens with a token would let a narrow one widen.
                Some(Scope::Admin)
            } else if read || path.ends_with("/whep") || path.contains("/whep/") {
                // WHEP is a POST (an SDP offer) and a DELETE of its own session, but it
                // only watches.
                Some(Scope::View)
            } else {
                // A state change no scope above names: only a full token.
                Some(Scope::Admin)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, cameras: Option<&[&str]>) -> CurrentUser {
        CurrentUser {
            name: "u".into(),
            role,
            cameras: cameras.map(|c| c.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn grant(scopes: &str, cameras: Option<&[&str]>) -> Grant {
        Grant::from_stored(
            scopes,
            cameras.map(|c| c.iter().map(|s| s.to_string()).collect()),
        )
    }

    #[test]
    fn a_token_never_exceeds_its_user() {
        // A viewer limited to "front": a token naming "back" too sees only "front".
        let n = grant("view,admin", Some(&["front", "back"]))
            .narrow(user(Role::Viewer, Some(&["front"])));
        assert_eq!(n.role, Role::Viewer);
        assert!(n.can_view("front") && !n.can_view("back"));
        // An admin's view-only token is a viewer of everything.
        let n = grant("view", None).narrow(user(Role::Admin, None));
        assert_eq!(n.role, Role::Viewer);
        assert!(n.can_view("anything"));
        // An admin's token limited to one camera sees one camera and is no admin.
        let n = grant("admin", Some(&["front"])).narrow(user(Role::Admin, None));
        assert_eq!(n.role, Role::Viewer);
        assert!(n.can_view("front") && !n.can_view("back"));
        // A full admin token is an admin.
        assert_eq!(
            grant("view,admin", None)
                .narrow(user(Role::Admin, None))
                .role,
            Role::Admin
        );
        // A viewer never holds admin scopes.
        assert!(!Scope::Cameras.allowed_for(Role::Viewer));
        assert!(Scope::Share.allowed_for(Role::Viewer));
    }

    #[test]
    fn stored_scopes_round_trip_and_unknown_ones_are_dropped() {
        let g = grant("share,view,view,teleport", None);
        assert_eq!(g.scopes, [Scope::View, Scope::Share]);
        assert_eq!(g.scopes_text(), "view,share");
        assert!(!g.has(Scope::Cameras));
        assert!(grant("admin", None).has(Scope::Cameras));
    }

    #[test]
    fn every_declared_route_has_a_decision() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            required_scope(&get, "/api/cameras", Access::User),
            Some(Scope::View)
        );
        assert_eq!(
            required_scope(&post, "/api/cameras", Access::Admin),
            Some(Scope::Cameras)
        );
        assert_eq!(
            required_scope(&get, "/api/users", Access::Admin),
            Some(Scope::Admin)
        );
        assert_eq!(
            required_scope(&post, "/api/shares", Access::User),
            Some(Scope::Share)
        );
        assert_eq!(
            required_scope(&post, "/api/cameras/{name}/whep", Access::User),
            Some(Scope::View)
        );
        assert_eq!(
            required_scope(&post, "/api/tokens", Access::User),
            Some(Scope::Admin)
        );
        assert_eq!(
            required_scope(&post, "/api/account/password", Access::User),
            None
        );
        assert_eq!(required_scope(&get, "/api/sessions", Access::User), None);
        // The route tables as shipped: every API route is decided one way or the other,
        // and no admin route is open to less than the admin or cameras scope.
        for doc in crate::router::ROUTES {
            if !doc.path.starts_with("/api/") {
                continue;
            }
            let m = Method::from_bytes(doc.method.as_bytes()).unwrap();
            let s = required_scope(&m, doc.path, doc.access);
            if doc.access == Access::Admin {
                assert!(
                    matches!(s, Some(Scope::Admin | Scope::Cameras)),
                    "{} {}",
                    doc.method,
                    doc.path
                );
            }
        }
    }
}
