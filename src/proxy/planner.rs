//! Planning: from an old state to a new one, the ordered
//! actions that get there. A pure function, kept apart from the code that
//! performs actions, so local mode, slave mode, dry runs and tests share it.

use std::collections::{BTreeMap, BTreeSet};

use super::state::{Deploy, State};
use crate::names::DeployLabel;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateDeploy(Deploy),
    DestroyDeploy(Deploy),
    /// The (endpoint, deploy) pairs nginx should route, in endpoint order.
    SetEndPoints(Vec<(String, Deploy)>),
}

/// One line per action, as `--dry-run` prints them:
/// `CreateDeploy shop-1.5 on port 8001`, `SetEndPoints main -> shop-1.5`.
impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::CreateDeploy(d) => write!(f, "CreateDeploy {} on port {}", d.label, d.port),
            Action::DestroyDeploy(d) => write!(f, "DestroyDeploy {} on port {}", d.label, d.port),
            Action::SetEndPoints(pairs) if pairs.is_empty() => write!(f, "SetEndPoints (none)"),
            Action::SetEndPoints(pairs) => {
                let routes: Vec<String> = pairs
                    .iter()
                    .map(|(endpoint, d)| format!("{endpoint} -> {}", d.label))
                    .collect();
                write!(f, "SetEndPoints {}", routes.join(", "))
            }
        }
    }
}

/// The endpoint→deploy pairs of `state` that can be routed: endpoints the
/// config knows, deploys the state has.
pub fn endpoint_pairs<'a>(
    state: &State,
    configured: impl IntoIterator<Item = &'a String>,
) -> Vec<(String, Deploy)> {
    configured
        .into_iter()
        .filter_map(|endpoint| {
            let label = state.connections.get(endpoint)?;
            let deploy = state.deploys.get(label)?;
            Some((endpoint.clone(), deploy.clone()))
        })
        .collect()
}

/// The connections a machine at `current` (part-way to `target`) can have:
/// `target`'s, except that an endpoint whose deploy `current` lacks (its
/// creation failed) keeps the deploy it has, if that still runs, rather
/// than routing nowhere. So one deploy that cannot be created holds back
/// only the endpoint that was to move to it.
pub fn reachable(current: &State, target: &State) -> BTreeMap<String, DeployLabel> {
    let mut routes = BTreeMap::new();
    for (endpoint, label) in &target.connections {
        let keep = current
            .connections
            .get(endpoint)
            .filter(|now| current.deploys.contains_key(*now));
        let to = match current.deploys.contains_key(label) {
            true => Some(label),
            false => keep,
        };
        if let Some(to) = to {
            routes.insert(endpoint.clone(), to.clone());
        }
    }
    routes
}

/// The configured endpoints whose deploy changes from `current` to
/// `routes`: (endpoint, the deploy it leaves, the deploy it goes to), for
/// the switch hooks.
pub fn switches<'a>(
    current: &State,
    routes: &BTreeMap<String, DeployLabel>,
    configured: impl IntoIterator<Item = &'a String>,
) -> Vec<(String, Option<Deploy>, Option<Deploy>)> {
    configured
        .into_iter()
        .filter_map(|endpoint| {
            let from = current.connections.get(endpoint);
            let to = routes.get(endpoint);
            (from != to).then(|| {
                let deploy = |label: Option<&DeployLabel>| {
                    label.and_then(|l| current.deploys.get(l)).cloned()
                };
                (endpoint.clone(), deploy(from), deploy(to))
            })
        })
        .collect()
}

/// The actions from `old` to `new`, in this order: make room on
/// needed ports, create, re-create changed deploys, switch traffic, and only
/// then destroy what traffic has left.
pub fn plan<'a>(
    old: &State,
    new: &State,
    configured_endpoints: impl IntoIterator<Item = &'a String> + Clone,
) -> Vec<Action> {
    let mut actions = Vec::new();

    let removed: Vec<&Deploy> = old
        .deploys
        .values()
        .filter(|d| !new.deploys.contains_key(&d.label))
        .collect();
    let added: Vec<&Deploy> = new
        .deploys
        .values()
        .filter(|d| !old.deploys.contains_key(&d.label))
        .collect();
    let changed: Vec<(&Deploy, &Deploy)> = new
        .deploys
        .values()
        .filter_map(|d| {
            let before = old.deploys.get(&d.label)?;
            (before != d).then_some((before, d))
        })
        .collect();

    // Ports the new deploys will listen on.
    let needed: BTreeSet<u16> = added
        .iter()
        .map(|d| d.port)
        .chain(changed.iter().map(|(_, d)| d.port))
        .collect();
    let (early, late): (Vec<&Deploy>, Vec<&Deploy>) =
        removed.into_iter().partition(|d| needed.contains(&d.port));
    // A changed deploy whose old port another new deploy needs (two
    // deploys swapping ports, seen by a slave that missed the master's
    // intermediate states) must also make room first, or creating the other
    // would clash; the spec's order covers only removed deploys.
    let needed_by_other = |label: &str, port: u16| {
        added.iter().any(|d| d.port == port)
            || changed
                .iter()
                .any(|(_, d)| d.label.as_str() != label && d.port == port)
    };
    let (changed_early, changed_late): (Vec<_>, Vec<_>) = changed
        .iter()
        .partition(|(before, _)| needed_by_other(before.label.as_str(), before.port));

    actions.extend(early.into_iter().cloned().map(Action::DestroyDeploy));
    actions.extend(
        changed_early
            .iter()
            .map(|(before, _)| Action::DestroyDeploy((*before).clone())),
    );
    actions.extend(added.iter().map(|d| Action::CreateDeploy((*d).clone())));
    for (before, after) in &changed {
        if changed_late.iter().any(|(b, _)| b.label == before.label) {
            actions.push(Action::DestroyDeploy((*before).clone()));
        }
        actions.push(Action::CreateDeploy((*after).clone()));
    }
    let old_pairs = endpoint_pairs(old, configured_endpoints.clone());
    let new_pairs = endpoint_pairs(new, configured_endpoints);
    if old_pairs != new_pairs {
        actions.push(Action::SetEndPoints(new_pairs));
    }
    actions.extend(late.into_iter().cloned().map(Action::DestroyDeploy));
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{DeployLabel, ReleaseName};

    fn d(label: &str, release: &str, port: u16) -> Deploy {
        Deploy {
            label: DeployLabel::parse(label).unwrap(),
            release: ReleaseName::parse(release).unwrap(),
            port,
        }
    }

    fn state(deploys: &[Deploy], connections: &[(&str, &str)]) -> State {
        State {
            deploys: deploys
                .iter()
                .map(|x| (x.label.clone(), x.clone()))
                .collect(),
            connections: connections
                .iter()
                .map(|(e, l)| (e.to_string(), DeployLabel::parse(l).unwrap()))
                .collect(),
            ..State::default()
        }
    }

    fn endpoints() -> Vec<String> {
        vec!["main".into(), "test".into()]
    }

    fn plan_of(old: &State, new: &State) -> Vec<Action> {
        let eps = endpoints();
        plan(old, new, &eps)
    }

    use Action::*;

    #[test]
    fn actions_read_as_one_line_each() {
        let (a, b) = (d("a", "a.zip", 8000), d("b", "b.zip", 8001));
        assert_eq!(
            CreateDeploy(b.clone()).to_string(),
            "CreateDeploy b on port 8001"
        );
        assert_eq!(
            DestroyDeploy(a.clone()).to_string(),
            "DestroyDeploy a on port 8000"
        );
        assert_eq!(SetEndPoints(vec![]).to_string(), "SetEndPoints (none)");
        assert_eq!(
            SetEndPoints(vec![("main".into(), a), ("test".into(), b)]).to_string(),
            "SetEndPoints main -> a, test -> b"
        );
    }

    #[test]
    fn nothing_changes_nothing_to_do() {
        let s = state(&[d("a", "a.zip", 8000)], &[("main", "a")]);
        assert_eq!(plan_of(&s, &s), vec![]);
        assert_eq!(plan_of(&State::default(), &State::default()), vec![]);
    }

    #[test]
    fn a_new_deploy_is_created() {
        let old = State::default();
        let new = state(&[d("a", "a.zip", 8000)], &[]);
        assert_eq!(
            plan_of(&old, &new),
            vec![CreateDeploy(d("a", "a.zip", 8000))]
        );
    }

    #[test]
    fn an_unconnected_removed_deploy_is_destroyed() {
        let old = state(&[d("a", "a.zip", 8000)], &[]);
        assert_eq!(
            plan_of(&old, &State::default()),
            vec![DestroyDeploy(d("a", "a.zip", 8000))]
        );
    }

    #[test]
    fn connecting_sets_endpoints_only() {
        let old = state(&[d("a", "a.zip", 8000)], &[]);
        let new = state(&[d("a", "a.zip", 8000)], &[("main", "a")]);
        assert_eq!(
            plan_of(&old, &new),
            vec![SetEndPoints(vec![("main".into(), d("a", "a.zip", 8000))])]
        );
    }

    #[test]
    fn disconnecting_sets_endpoints_to_none() {
        let old = state(&[d("a", "a.zip", 8000)], &[("main", "a")]);
        let new = state(&[d("a", "a.zip", 8000)], &[]);
        assert_eq!(plan_of(&old, &new), vec![SetEndPoints(vec![])]);
    }

    #[test]
    fn blue_green_switch_creates_then_switches_then_destroys() {
        // The master went from A connected to B connected, with A gone.
        let old = state(&[d("a", "a.zip", 8000)], &[("main", "a")]);
        let new = state(&[d("b", "b.zip", 8001)], &[("main", "b")]);
        assert_eq!(
            plan_of(&old, &new),
            vec![
                CreateDeploy(d("b", "b.zip", 8001)),
                SetEndPoints(vec![("main".into(), d("b", "b.zip", 8001))]),
                DestroyDeploy(d("a", "a.zip", 8000)),
            ]
        );
    }

    #[test]
    fn a_removed_deploy_holding_a_needed_port_goes_first() {
        let old = state(&[d("a", "a.zip", 8000), d("x", "x.zip", 8001)], &[]);
        let new = state(&[d("b", "b.zip", 8000), d("x", "x.zip", 8001)], &[]);
        assert_eq!(
            plan_of(&old, &new),
            vec![
                DestroyDeploy(d("a", "a.zip", 8000)),
                CreateDeploy(d("b", "b.zip", 8000)),
            ]
        );
    }

    #[test]
    fn a_changed_deploy_is_destroyed_then_recreated_before_endpoints() {
        let old = state(&[d("a", "a-1.zip", 8000)], &[("main", "a")]);
        let new = state(&[d("a", "a-2.zip", 8000)], &[("main", "a")]);
        assert_eq!(
            plan_of(&old, &new),
            vec![
                DestroyDeploy(d("a", "a-1.zip", 8000)),
                CreateDeploy(d("a", "a-2.zip", 8000)),
                SetEndPoints(vec![("main".into(), d("a", "a-2.zip", 8000))]),
            ]
        );
        // A port change is a change too.
        let new = state(&[d("a", "a-1.zip", 8005)], &[]);
        assert_eq!(
            plan_of(&old, &new),
            vec![
                DestroyDeploy(d("a", "a-1.zip", 8000)),
                CreateDeploy(d("a", "a-1.zip", 8005)),
                SetEndPoints(vec![]),
            ]
        );
    }

    #[test]
    fn unknown_endpoints_and_missing_deploys_are_not_routed() {
        // "legacy" is not configured; "test" points at a deploy that is gone.
        let old = State::default();
        let new = state(
            &[d("a", "a.zip", 8000)],
            &[("legacy", "a"), ("test", "ghost")],
        );
        assert_eq!(
            plan_of(&old, &new),
            vec![CreateDeploy(d("a", "a.zip", 8000))]
        );
    }

    #[test]
    fn the_full_order_of_the_spec() {
        let old = state(
            &[
                d("gone-early", "g.zip", 8002),
                d("gone-late", "l.zip", 8003),
                d("changed", "c-1.zip", 8004),
                d("kept", "k.zip", 8005),
            ],
            &[("main", "gone-late"), ("test", "kept")],
        );
        let new = state(
            &[
                d("added", "n.zip", 8002),
                d("changed", "c-2.zip", 8004),
                d("kept", "k.zip", 8005),
            ],
            &[("main", "added"), ("test", "kept")],
        );
        assert_eq!(
            plan_of(&old, &new),
            vec![
                DestroyDeploy(d("gone-early", "g.zip", 8002)),
                CreateDeploy(d("added", "n.zip", 8002)),
                DestroyDeploy(d("changed", "c-1.zip", 8004)),
                CreateDeploy(d("changed", "c-2.zip", 8004)),
                SetEndPoints(vec![
                    ("main".into(), d("added", "n.zip", 8002)),
                    ("test".into(), d("kept", "k.zip", 8005)),
                ]),
                DestroyDeploy(d("gone-late", "l.zip", 8003)),
            ]
        );
    }

    #[test]
    fn two_deploys_swapping_ports_make_room_first() {
        let old = state(&[d("a", "a.zip", 8000), d("b", "b.zip", 8001)], &[]);
        let new = state(&[d("a", "a.zip", 8001), d("b", "b.zip", 8000)], &[]);
        assert_eq!(
            plan_of(&old, &new),
            vec![
                DestroyDeploy(d("a", "a.zip", 8000)),
                DestroyDeploy(d("b", "b.zip", 8001)),
                CreateDeploy(d("a", "a.zip", 8001)),
                CreateDeploy(d("b", "b.zip", 8000)),
            ]
        );
    }

    #[test]
    fn an_endpoint_keeps_its_deploy_when_the_next_one_could_not_be_created() {
        let (a, b, c) = (
            d("a", "a.zip", 8000),
            d("b", "b.zip", 8001),
            d("c", "c.zip", 8002),
        );
        // main moves a -> b and test moves to c; c could not be created.
        let current = state(&[a, b.clone()], &[("main", "a"), ("test", "a")]);
        let target = state(&[b.clone(), c.clone()], &[("main", "b"), ("test", "c")]);
        let routes = reachable(&current, &target);
        assert_eq!(routes.get("main").map(|l| l.as_str()), Some("b"));
        assert_eq!(routes.get("test").map(|l| l.as_str()), Some("a"));
        // An endpoint the target disconnects is disconnected.
        let target = state(std::slice::from_ref(&b), &[]);
        assert!(reachable(&current, &target).is_empty());
        // Nothing to keep: not routed.
        let current = state(&[b], &[]);
        let target = state(&[c], &[("main", "c")]);
        assert!(reachable(&current, &target).is_empty());
    }

    #[test]
    fn applying_the_plan_reaches_the_new_state() {
        // Whatever the states, replaying the actions on the old state's
        // deploys yields exactly the new state's deploys.
        let deploys = [
            d("a", "a.zip", 8000),
            d("b", "b.zip", 8001),
            d("a", "a2.zip", 8001),
            d("b", "b.zip", 8000),
            d("c", "c.zip", 8002),
            d("c", "c.zip", 8000),
        ];
        // Every valid state over these: one deploy per label, one per port.
        let subsets: Vec<Vec<Deploy>> = (0..64u32)
            .filter_map(|mask| {
                let chosen: Vec<&Deploy> = deploys
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, x)| x)
                    .collect();
                let labels: BTreeSet<&str> = chosen.iter().map(|x| x.label.as_str()).collect();
                let ports: BTreeSet<u16> = chosen.iter().map(|x| x.port).collect();
                (labels.len() == chosen.len() && ports.len() == chosen.len())
                    .then(|| chosen.into_iter().cloned().collect())
            })
            .collect();
        for old_d in &subsets {
            for new_d in &subsets {
                let old = state(old_d, &[]);
                let new = state(new_d, &[]);
                let mut live = old.deploys.clone();
                for action in plan_of(&old, &new) {
                    match action {
                        CreateDeploy(x) => {
                            assert!(!live.contains_key(&x.label), "created twice");
                            assert!(
                                !live.values().any(|y| y.port == x.port),
                                "port {} still in use when creating {}",
                                x.port,
                                x.label
                            );
                            live.insert(x.label.clone(), x);
                        }
                        DestroyDeploy(x) => {
                            assert_eq!(live.remove(&x.label), Some(x));
                        }
                        SetEndPoints(_) => {}
                    }
                }
                assert_eq!(live, new.deploys, "{old_d:?} -> {new_d:?}");
            }
        }
    }
}
