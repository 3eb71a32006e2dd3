//! Property tests (bounded, run in CI): arbitrary pipeline YAML and arbitrary PBA logs
//! never panic; they load or fail with an error.

use proptest::prelude::*;
use rolekd_engine::pipeline::Pipeline;

fn yaml_fragment() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "name: x",
        "seed: 3",
        "seed: -1",
        "device: cuda:9",
        "device: tpu",
        "data: {type: fashion-mnist}",
        "data: 7",
        "stages:",
        "stages: {}",
        "stages: []",
        "  a:",
        "  b:",
        "    kind: train",
        "    kind: distill",
        "    kind: nope",
        "    model: {type: small-cnn}",
        "    model: *m",
        "    epochs: 2",
        "    epochs: -3",
        "    teacher: ${a.checkpoint}",
        "    teacher: ${a}",
        "    teacher: ${zz.checkpoint}",
        "    loss: [{type: kd, temperature: 4}]",
        "    <<: *m",
        "x-m: &m {type: small-cnn}",
        "base: missing.yaml",
        "plugins: [libnope.so]",
        "  - 1",
        "{",
        "]",
        ": :",
        "\t",
        "'",
        "\"",
        "&a",
        "*a",
        "---",
        "...",
    ]);
    prop::collection::vec(atoms, 0..14).prop_map(|v| v.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn pipeline_yaml_never_panics(text in yaml_fragment()) {
        rolekd::link_builtins();
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("p.yaml");
        std::fs::write(&f, &text).unwrap();
        if let Ok(p) = Pipeline::load(&f, &[]) {
            let _ = rolekd_engine::graph::build(&p);
        }
    }

    #[test]
    fn arbitrary_text_as_yaml_never_panics(text in "\\PC{0,200}") {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("p.yaml");
        std::fs::write(&f, &text).unwrap();
        let _ = Pipeline::load(&f, &[]);
    }

    #[test]
    fn pba_log_import_never_panics(
        lines in prop::collection::vec(
            prop_oneof![
                "\\PC{0,80}",
                (0i64..4, 0i64..4, 0i64..12, 0i64..12, -2i64..12).prop_map(|(t, c, ti, ci, g)| {
                    let cfg = |v: i64| serde_json::json!({"hp_policy": vec![v; 60]});
                    serde_json::json!([t, c, ti, ci, cfg(g), cfg(g + 1)]).to_string()
                }),
            ],
            0..6,
        ),
        epochs in 0usize..30,
    ) {
        let text = lines.join("\n");
        if let Ok(s) = rolekd_augment::schedule::import_pba_log(&text, epochs) {
            let covered: usize = s.segments.iter().map(|g| g.end - g.start).sum();
            prop_assert_eq!(covered, s.epochs);
        }
    }
}
