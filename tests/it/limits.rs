//! What one release may cost: a zip that unpacks to too much, a template
//! that takes too many steps or renders too much fails fast, naming the
//! limit and how to raise it, and leaves nothing behind.

use serde_json::json;

use crate::common::Env;

#[test]
fn a_release_that_unpacks_past_the_limit_fails_and_leaves_nothing() {
    let mut env = Env::new();
    env.set("limits", json!({"maxUnpackedBytes": 1_000_000}));
    // 3 MB of zeros: a few KB zipped.
    env.release("bomb.zip")
        .file_bytes("zeros", vec![0; 3_000_000])
        .publish();
    env.c2(&["start", "bomb.zip"]).fails_with(
        "unpacks to more than 1000000 bytes (limits.maxUnpackedBytes): raise that limit in the config",
    );
    assert!(!env.exists("deploys/bomb"));
    assert_eq!(env.current(), None);

    // Raised, the same release deploys.
    env.set("limits", json!({"maxUnpackedBytes": 4_000_000}));
    env.c2(&["start", "bomb.zip"]).ok();
    assert_eq!(env.current().as_deref(), Some("bomb"));
}

#[test]
fn a_template_that_takes_too_many_steps_fails_fast() {
    // Five sections nested over a 100-item list: 10^10 visits, each
    // rendering nothing. Without a bound this runs for minutes.
    let env = Env::new();
    let list: Vec<u32> = (0..100).collect();
    env.release("loops.zip")
        .file("data.json", &json!({ "l": list }).to_string())
        .set("configSources", json!({"data": "data.json"}))
        .template(
            "out.txt.tpl",
            "{{#data.l}}{{#data.l}}{{#data.l}}{{#data.l}}{{#data.l}}{{/data.l}}{{/data.l}}{{/data.l}}{{/data.l}}{{/data.l}}",
        )
        .publish();
    env.c2(&["start", "loops.zip"]).fails_with(
        "more than 10000000 steps (limits.maxTemplateSteps): raise that limit in the config",
    );
    assert!(!env.exists("deploys/loops"));
}

#[test]
fn a_template_that_renders_too_much_fails() {
    let mut env = Env::new();
    env.set("limits", json!({"maxRenderedBytes": 10_000}));
    let list: Vec<u32> = (0..2000).collect();
    env.release("big.zip")
        .file("data.json", &json!({ "l": list }).to_string())
        .set("configSources", json!({"data": "data.json"}))
        .template("out.txt.tpl", "{{#data.l}}0123456789{{/data.l}}")
        .publish();
    env.c2(&["start", "big.zip"])
        .fails_with("past 10000 bytes (limits.maxRenderedBytes): raise that limit in the config");
    assert!(!env.exists("deploys/big"));
}
