//! The cost of one permission check on the routing path: publish with 20
//! roles of 10 patterns each (200 patterns, the allowing one last), against
//! no roles. A counting allocator shows that a check allocates nothing; the
//! policy is plain data (no lock is taken: `Policy::check` takes `&self`).
//!
//! `cargo run --release -p zerorelay-bench --bin rbac_check`

use std::hint::black_box;
use std::time::Instant;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use zerorelay::auth::rbac::Policy;
use zerorelay::auth::{Action, Identity};
use zerorelay::config::{AuthConfig, RoleConfig};

/// The system allocator, counting (stats_alloc holds the unsafe part).
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// 20 roles of 10 patterns; only the last pattern of the last role allows
/// publishing to the bench group (`last`: the group's name, or a pattern
/// like `ben*` that makes a check walk every wildcard rule).
fn twenty_roles(last: &str) -> AuthConfig {
    let mut auth = AuthConfig::default();
    for r in 0..20 {
        let mut allow: Vec<String> = (0..10).map(|p| format!("publish:team-{r}-{p}-*")).collect();
        if r == 19 {
            allow[9] = format!("publish:{last}");
            allow.push(format!("join:{}", zerorelay_bench::GROUP));
        }
        auth.roles.insert(format!("role{r}"), RoleConfig { allow });
    }
    auth.default_roles = (0..20).map(|r| format!("role{r}")).collect();
    auth
}

fn measure(label: &str, policy: &Policy, n: u64) -> f64 {
    let who = Identity::user("alice");
    let grants = policy.grants(&who);
    let action = Action::Publish {
        group: zerorelay_bench::GROUP,
    };
    for _ in 0..10_000 {
        black_box(policy.check(&grants, Some("alice"), black_box(&action))).expect("allowed");
    }
    let region = Region::new(GLOBAL);
    let t = Instant::now();
    for _ in 0..n {
        black_box(policy.check(&grants, Some("alice"), black_box(&action))).expect("allowed");
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    let allocs = region.change().allocations;
    println!("{label:<32} {ns:>8.1} ns per check, {allocs} allocations in {n} checks");
    ns
}

fn main() {
    let n = 2_000_000;
    let off = Policy::compile(&AuthConfig::default()).expect("no roles");
    let exact = Policy::compile(&twenty_roles(zerorelay_bench::GROUP)).expect("valid roles");
    let wild = Policy::compile(&twenty_roles("ben*")).expect("valid roles");
    let a = measure("no roles (allow all)", &off, n);
    let b = measure("200 patterns, group named", &exact, n);
    let c = measure("200 patterns, group by ben*", &wild, n);
    println!(
        "added per publish: {:.1} ns (named), {:.1} ns (every wildcard rule walked)",
        b - a,
        c - a
    );
}
