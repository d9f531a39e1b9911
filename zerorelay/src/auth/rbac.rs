//! Role-based permissions from the configuration, compiled once.
//!
//! A permission is `action:resource-pattern`. The actions are `join`,
//! `publish`, `send`, `broadcast`, `rpc` and `presence` (or `*` for all);
//! the resource is a group (join, publish, presence), the recipient
//! (`user:<name>` or `session:<id>` for send), the method (rpc), or nothing
//! (broadcast: `broadcast` alone). In a pattern `*` matches any run of
//! characters and `{user}` the connection's own user, so
//! `join:user:{user}` lets everyone join only their own personal group. A
//! permission of `*` alone allows everything.
//!
//! [`Policy::compile`] turns `[auth.roles]` into per-action rule lists;
//! [`Policy::grants`] resolves an identity's roles to a bit set once per
//! connection (and per refresh). A check then walks the action's rules
//! comparing bits and bytes: no allocation and no lock on the routing path.

use std::collections::HashMap;
use std::fmt;

use super::{Action, Identity};
use crate::config::AuthConfig;
use crate::error::{ErrorCode, ProtocolError};
use crate::protocol::Target;

/// What a permission is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `join`
    Join,
    /// `publish`
    Publish,
    /// `send`
    Send,
    /// `broadcast`
    Broadcast,
    /// `rpc`
    Rpc,
    /// `presence`
    Presence,
}

const VERBS: [(Verb, &str); 6] = [
    (Verb::Join, "join"),
    (Verb::Publish, "publish"),
    (Verb::Send, "send"),
    (Verb::Broadcast, "broadcast"),
    (Verb::Rpc, "rpc"),
    (Verb::Presence, "presence"),
];

impl Verb {
    fn name(self) -> &'static str {
        VERBS[self as usize].1
    }
}

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(Box<str>),
    Star,
    User,
}

/// A compiled resource pattern: literal text, `*` and `{user}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    parts: Box<[Part]>,
}

impl Pattern {
    /// Compiles `text`; `{` is allowed only as `{user}`.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("a pattern must not be empty".into());
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if c == '*' {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit).into()));
                }
                if parts.last() != Some(&Part::Star) {
                    parts.push(Part::Star);
                }
                rest = &rest[1..];
            } else if c == '{' {
                let Some(after) = rest.strip_prefix("{user}") else {
                    return Err(format!(
                        "{text:?}: `{{` may only start `{{user}}` (the connection's own user)"
                    ));
                };
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit).into()));
                }
                parts.push(Part::User);
                rest = after;
            } else if c == '}' {
                return Err(format!("{text:?}: a `}}` without `{{user`"));
            } else {
                lit.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit.into()));
        }
        Ok(Pattern {
            parts: parts.into(),
        })
    }

    /// The pattern's text when it is a plain literal (no `*`, no `{user}`).
    fn literal(&self) -> Option<&str> {
        match &*self.parts {
            [Part::Lit(l)] => Some(l),
            _ => None,
        }
    }

    /// Whether `resource` (given as two pieces, read one after the other)
    /// matches, `{user}` standing for `user`. Never allocates.
    pub fn matches(&self, resource: (&str, &str), user: Option<&str>) -> bool {
        let res = Joined(resource.0.as_bytes(), resource.1.as_bytes());
        let parts = &self.parts;
        let (mut pi, mut ri) = (0usize, 0usize);
        // Where to resume after the last star: (part after it, resource index).
        let mut star: Option<(usize, usize)> = None;
        loop {
            if pi < parts.len() {
                let lit = match &parts[pi] {
                    Part::Star => {
                        star = Some((pi + 1, ri));
                        pi += 1;
                        continue;
                    }
                    Part::Lit(l) => l.as_bytes(),
                    Part::User => match user {
                        Some(u) => u.as_bytes(),
                        // No user: `{user}` stands for nothing that exists.
                        None => return false,
                    },
                };
                if res.has_at(ri, lit) {
                    ri += lit.len();
                    pi += 1;
                    continue;
                }
            } else if ri == res.len() {
                return true;
            }
            match star {
                Some((sp, sr)) if sr < res.len() => {
                    star = Some((sp, sr + 1));
                    pi = sp;
                    ri = sr + 1;
                }
                _ => return false,
            }
        }
    }
}

/// Two byte strings read as one.
struct Joined<'a>(&'a [u8], &'a [u8]);

impl Joined<'_> {
    fn len(&self) -> usize {
        self.0.len() + self.1.len()
    }

    /// Whether `lit` is at `at`: at most two slice comparisons.
    fn has_at(&self, at: usize, lit: &[u8]) -> bool {
        if at + lit.len() > self.len() {
            return false;
        }
        let first = self.0.len();
        if at >= first {
            return &self.1[at - first..at - first + lit.len()] == lit;
        }
        let in_first = (first - at).min(lit.len());
        self.0[at..at + in_first] == lit[..in_first]
            && self.1[..lit.len() - in_first] == lit[in_first..]
    }
}

/// A compiled rule: which role grants it, for what.
#[derive(Debug, Clone)]
struct Rule {
    role: usize,
    /// The pattern's first byte when it starts with a literal: most rules
    /// are told apart from a resource by it alone.
    first: Option<u8>,
    pattern: Pattern,
}

/// The compiled `[auth.roles]`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Role name → its index (its bit in a [`Grants`]).
    roles: HashMap<String, usize>,
    /// Rules with `*` or `{user}` per action, in [`Verb`] order.
    rules: [Vec<Rule>; 6],
    /// Plain-literal permissions per action: resource → the roles granting
    /// it (one hash lookup however many there are).
    exact: [HashMap<Box<str>, Vec<usize>>; 6],
    default_roles: Vec<usize>,
    enabled: bool,
}

/// What one identity may do under a [`Policy`]: its roles as bits, and the
/// group patterns its token narrows them to.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    roles: Box<[u64]>,
    groups: Option<Box<[Pattern]>>,
}

impl Policy {
    /// Compiles the roles of `auth`; the error names the role and the
    /// permission.
    pub fn compile(auth: &AuthConfig) -> Result<Policy, crate::Error> {
        let mut p = Policy {
            enabled: !auth.roles.is_empty(),
            ..Policy::default()
        };
        for (i, (name, role)) in auth.roles.iter().enumerate() {
            p.roles.insert(name.clone(), i);
            for perm in &role.allow {
                let bad = |why: String| {
                    crate::Error::Config(format!("`auth.roles.{name}.allow`: {perm:?}: {why}"))
                };
                if perm == "*" {
                    for rules in &mut p.rules {
                        rules.push(Rule {
                            role: i,
                            first: None,
                            pattern: Pattern::parse("*").expect("a star is a pattern"),
                        });
                    }
                    continue;
                }
                let (action, resource) = perm.split_once(':').unwrap_or((perm, ""));
                let resource = match (action, resource) {
                    ("broadcast", "") => "*",
                    (_, "") => return Err(bad(
                        "expected action:resource-pattern, like join:room-* (or * for everything)"
                            .into(),
                    )),
                    (_, r) => r,
                };
                let pattern = Pattern::parse(resource).map_err(bad)?;
                let verbs: Vec<Verb> = if action == "*" {
                    VERBS.iter().map(|(v, _)| *v).collect()
                } else {
                    match VERBS.iter().find(|(_, n)| *n == action) {
                        Some((v, _)) => vec![*v],
                        None => {
                            return Err(bad(format!(
                                "unknown action {action:?}; the actions are join, publish, send, broadcast, rpc, presence and *"
                            )))
                        }
                    }
                };
                for v in verbs {
                    match pattern.literal() {
                        Some(lit) => p.exact[v as usize].entry(lit.into()).or_default().push(i),
                        None => p.rules[v as usize].push(Rule {
                            role: i,
                            first: match pattern.parts.first() {
                                Some(Part::Lit(l)) => l.bytes().next(),
                                _ => None,
                            },
                            pattern: pattern.clone(),
                        }),
                    }
                }
            }
        }
        for name in &auth.default_roles {
            match p.roles.get(name) {
                Some(i) => p.default_roles.push(*i),
                None => {
                    return Err(crate::Error::Config(format!(
                        "`auth.default_roles` names {name:?}, which is not under [auth.roles]"
                    )))
                }
            }
        }
        Ok(p)
    }

    /// Whether any role is configured (then everything not allowed is
    /// refused).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Resolves `identity`'s roles (or the default roles, when it brings
    /// none). Roles the configuration does not know grant nothing.
    pub fn grants(&self, identity: &Identity) -> Grants {
        let mut bits = vec![0u64; self.roles.len().div_ceil(64)].into_boxed_slice();
        let mut set = |i: usize| bits[i / 64] |= 1 << (i % 64);
        if identity.roles.is_empty() {
            self.default_roles.iter().for_each(|i| set(*i));
        } else {
            for r in &identity.roles {
                match self.roles.get(r) {
                    Some(i) => set(*i),
                    None => {
                        tracing::debug!(role = %r, user = ?identity.user, "An identity has a role that [auth.roles] does not define; it grants nothing.")
                    }
                }
            }
        }
        let groups = identity.groups.as_ref().map(|g| {
            g.iter()
                .filter_map(|p| match Pattern::parse(p) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::debug!(error = %e, "Ignored a group pattern in a token; it allows nothing.");
                        None
                    }
                })
                .collect()
        });
        Grants {
            roles: bits,
            groups,
        }
    }

    /// Checks `action` for an identity with `grants`; a refusal is
    /// `forbidden` and names the action and the resource.
    pub fn check(
        &self,
        grants: &Grants,
        user: Option<&str>,
        action: &Action<'_>,
    ) -> Result<(), ProtocolError> {
        let (verb, resource): (Verb, (&str, &str)) = match action {
            Action::Join { group } => (Verb::Join, ("", group)),
            Action::Publish { group } => (Verb::Publish, ("", group)),
            Action::Presence { group } => (Verb::Presence, ("", group)),
            Action::Send { target } => match target {
                Target::User(u) => (Verb::Send, ("user:", u)),
                Target::Session(s) => (Verb::Send, ("session:", s)),
            },
            Action::Broadcast => (Verb::Broadcast, ("", "")),
            Action::Rpc { method } => (Verb::Rpc, ("", method)),
        };
        let group_action = matches!(verb, Verb::Join | Verb::Publish | Verb::Presence);
        if group_action {
            if let Some(allowed) = &grants.groups {
                if !allowed.iter().any(|p| p.matches(resource, user)) {
                    return Err(refusal(
                        verb,
                        resource,
                        "the token's groups claim does not list it",
                    ));
                }
            }
        }
        if !self.enabled {
            return Ok(());
        }
        let has = |role: usize| grants.roles[role / 64] & (1 << (role % 64)) != 0;
        let exact = &self.exact[verb as usize];
        let allowed = (!exact.is_empty()
            && with_joined(resource, |r| {
                exact
                    .get(r)
                    .is_some_and(|roles| roles.iter().any(|i| has(*i)))
            }))
            || {
                let first = resource.0.bytes().next().or(resource.1.bytes().next());
                self.rules[verb as usize].iter().any(|r| {
                    (r.first.is_none() || r.first == first)
                        && has(r.role)
                        && r.pattern.matches(resource, user)
                })
            };
        if allowed {
            Ok(())
        } else {
            Err(refusal(
                verb,
                resource,
                "no role of this connection allows it",
            ))
        }
    }
}

/// Calls `f` with the two halves of a resource as one string, joined on
/// the stack (names are at most 128 bytes; longer is never a permission).
fn with_joined(resource: (&str, &str), f: impl FnOnce(&str) -> bool) -> bool {
    if resource.0.is_empty() {
        return f(resource.1);
    }
    let mut buf = [0u8; 160];
    let (a, b) = (resource.0.as_bytes(), resource.1.as_bytes());
    if a.len() + b.len() > buf.len() {
        return false;
    }
    buf[..a.len()].copy_from_slice(a);
    buf[a.len()..a.len() + b.len()].copy_from_slice(b);
    std::str::from_utf8(&buf[..a.len() + b.len()]).is_ok_and(f)
}

fn refusal(verb: Verb, resource: (&str, &str), why: &str) -> ProtocolError {
    let message = if verb == Verb::Broadcast {
        format!("forbidden: broadcast: {why}")
    } else {
        format!(
            "forbidden: {} {}{}: {why}",
            verb.name(),
            resource.0,
            resource.1
        )
    };
    ProtocolError::new(ErrorCode::Forbidden, message)
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.parts.iter() {
            match p {
                Part::Lit(l) => f.write_str(l)?,
                Part::Star => f.write_str("*")?,
                Part::User => f.write_str("{user}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoleConfig;

    fn m(p: &str, r: &str, user: Option<&str>) -> bool {
        Pattern::parse(p).unwrap().matches(("", r), user)
    }

    #[test]
    fn patterns_match_stars_literals_and_the_user() {
        assert!(m("*", "anything", None));
        assert!(m("room-*", "room-1", None));
        assert!(m("room-*", "room-", None));
        assert!(!m("room-*", "roo", None));
        assert!(m("*-admin", "x-admin", None));
        assert!(m("a*b*c", "aXbYbZc", None));
        assert!(!m("a*b*c", "aXbYbZ", None));
        assert!(m("a*a", "aaa", None));
        assert!(!m("room-1", "room-12", None));
        assert!(m("user:{user}", "user:alice", Some("alice")));
        assert!(!m("user:{user}", "user:alicex", Some("alice")));
        assert!(!m("user:{user}", "user:bob", Some("alice")));
        assert!(!m("user:{user}", "user:", None));
        assert!(m("team-*:{user}", "team-x:al", Some("al")));
        // The two halves of a resource are read as one.
        let p = Pattern::parse("user:b*").unwrap();
        assert!(p.matches(("user:", "bob"), None));
        assert!(!p.matches(("session:", "bob"), None));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("a{b}").is_err());
        assert!(Pattern::parse("a}").is_err());
    }

    fn auth(roles: &[(&str, &[&str])], default: &[&str]) -> AuthConfig {
        AuthConfig {
            roles: roles
                .iter()
                .map(|(n, allow)| {
                    (
                        n.to_string(),
                        RoleConfig {
                            allow: allow.iter().map(|s| s.to_string()).collect(),
                        },
                    )
                })
                .collect(),
            default_roles: default.iter().map(|s| s.to_string()).collect(),
            ..AuthConfig::default()
        }
    }

    #[test]
    fn bad_permissions_name_the_role_and_the_permission() {
        for (perm, says) in [
            ("join", "action:resource-pattern"),
            ("fly:room", "unknown action"),
            ("join:{users}", "{user}"),
        ] {
            let e = Policy::compile(&auth(&[("member", &[perm])], &[]))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("auth.roles.member.allow") && e.contains(says),
                "{e}"
            );
        }
        let e = Policy::compile(&auth(&[("member", &["*"])], &["nobody"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("default_roles"), "{e}");
    }

    #[test]
    fn default_deny_with_roles_allow_all_without() {
        let who = Identity::user("alice");
        let open = Policy::compile(&AuthConfig::default()).unwrap();
        let g = open.grants(&who);
        assert!(open
            .check(&g, Some("alice"), &Action::Join { group: "x" })
            .is_ok());
        let p = Policy::compile(&auth(
            &[
                (
                    "member",
                    &["join:room-*", "join:user:{user}", "send:user:*"],
                ),
                ("admin", &["*"]),
            ],
            &["member"],
        ))
        .unwrap();
        let g = p.grants(&who);
        let ok = |a: Action<'_>| p.check(&g, Some("alice"), &a);
        assert!(ok(Action::Join { group: "room-1" }).is_ok());
        assert!(ok(Action::Join {
            group: "user:alice"
        })
        .is_ok());
        let e = ok(Action::Join { group: "user:bob" }).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(e.message.contains("join user:bob"), "{}", e.message);
        assert!(ok(Action::Publish { group: "room-1" }).is_err());
        assert!(ok(Action::Broadcast).is_err());
        let bob = Target::User("bob".into());
        assert!(ok(Action::Send { target: &bob }).is_ok());
        let sess = Target::Session("s1".into());
        assert!(ok(Action::Send { target: &sess }).is_err());
        let admin = Identity {
            roles: vec!["admin".into()],
            ..Identity::user("root")
        };
        let g = p.grants(&admin);
        assert!(p.check(&g, Some("root"), &Action::Broadcast).is_ok());
        let unknown = Identity {
            roles: vec!["ghost".into()],
            ..Identity::user("eve")
        };
        let g = p.grants(&unknown);
        assert!(p
            .check(&g, Some("eve"), &Action::Join { group: "room-1" })
            .is_err());
    }

    #[test]
    fn the_groups_claim_narrows_and_never_widens() {
        let p = Policy::compile(&auth(&[("member", &["join:room-*"])], &["member"])).unwrap();
        let who = Identity {
            groups: Some(vec!["room-1".into(), "secret".into()]),
            ..Identity::user("alice")
        };
        let g = p.grants(&who);
        let join = |group| p.check(&g, Some("alice"), &Action::Join { group });
        assert!(join("room-1").is_ok());
        let e = join("room-2").unwrap_err();
        assert!(e.message.contains("groups claim"), "{}", e.message);
        // Listed by the token but allowed by no role: still refused.
        assert!(join("secret").is_err());
        // Without roles configured the claim still narrows.
        let open = Policy::compile(&AuthConfig::default()).unwrap();
        let g = open.grants(&who);
        assert!(open
            .check(&g, Some("alice"), &Action::Join { group: "room-2" })
            .is_err());
    }
}

/// The policy in force, replaceable at run time (a configuration reload).
/// Connections hold the policy they resolved their grants under and compare
/// one counter per request to notice a replacement.
#[derive(Debug, Default)]
pub struct PolicyCell {
    current: parking_lot::RwLock<std::sync::Arc<Policy>>,
    generation: std::sync::atomic::AtomicU64,
}

impl PolicyCell {
    /// A cell holding `policy`.
    pub fn new(policy: Policy) -> Self {
        PolicyCell {
            current: parking_lot::RwLock::new(std::sync::Arc::new(policy)),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Puts `policy` in force for every connection's next request.
    pub fn replace(&self, policy: Policy) {
        *self.current.write() = std::sync::Arc::new(policy);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The policy in force.
    pub fn current(&self) -> std::sync::Arc<Policy> {
        self.current.read().clone()
    }
}

/// One connection's view of the policy: resolved at `welcome`, again after
/// a `refresh` and after a reload.
#[derive(Debug)]
pub struct Access {
    policy: std::sync::Arc<Policy>,
    grants: Grants,
    generation: u64,
}

impl Access {
    /// Resolves `identity` under the policy in `cell`.
    pub fn new(cell: &PolicyCell, identity: &Identity) -> Access {
        let generation = cell.generation();
        let policy = cell.current();
        let grants = policy.grants(identity);
        Access {
            policy,
            grants,
            generation,
        }
    }

    /// Resolves again if the policy was replaced since (one atomic load
    /// when it was not).
    pub fn renew_if_replaced(&mut self, cell: &PolicyCell, identity: &Identity) {
        if cell.generation() != self.generation {
            *self = Access::new(cell, identity);
        }
    }

    /// Checks `action`.
    pub fn check(&self, identity: &Identity, action: &Action<'_>) -> Result<(), ProtocolError> {
        self.policy
            .check(&self.grants, identity.user.as_deref(), action)
    }
}
