//! The file read as a user writes it: each mistake refused where it is.

use super::*;
use std::path::Path;

fn parse(text: &str) -> Result<ServiceConfig, ConfigError> {
    ServiceConfig::parse(Path::new("/srv/snakepen.toml"), text)
}

#[test]
fn a_misspelt_key_is_refused_with_its_line() {
    let err = parse("[server]\nlisten = \"127.0.0.1:1\"\n\n[pool]\nmodul = \"x\"\n").unwrap_err();
    assert_eq!(err.line, Some(5), "{err}");
    assert!(
        err.to_string().starts_with("/srv/snakepen.toml:5: "),
        "{err}"
    );
    assert!(err.message.contains("unknown field `modul`"), "{err}");
}

#[test]
fn a_bad_address_names_the_key_and_line() {
    let err = parse("[server]\n\nlisten = \"localhost\"\n").unwrap_err();
    assert_eq!(err.line, Some(3));
    assert!(err.message.contains("server.listen"), "{err}");
}

#[test]
fn a_wrong_type_and_a_bad_value_are_refused_where_they_are() {
    let err = parse("[pool]\nmodule = \"app.handlers\"\nsize = \"four\"\n").unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    let err = parse("[pool]\nmodule = \"app.handlers\"\nsize = 0\n").unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    assert!(err.message.contains("pool.size"), "{err}");
    let err = parse("[pool]\nmodule = \"app.handlers\"\nmax_concurrency = 0\n").unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    assert!(err.message.contains("pool.max_concurrency"), "{err}");
    let parsed = parse("[pool]\nmodule = \"app.handlers\"\nmax_concurrency = 50\n").unwrap();
    assert_eq!(parsed.pool_config().unwrap().unwrap().max_concurrency, 50);
    let err = parse("[pool]\nmodule = \"app.handlers\"\naffinity = \"sticky\"\n").unwrap_err();
    assert!(err.message.contains("\"hint\" or \"strict\""), "{err}");
    let err = parse("[cassette]\npath = \"c.jsonl\"\nmode = \"sometimes\"\n").unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
}

#[test]
fn a_module_file_that_is_not_there_is_named() {
    let err = parse("[pool]\nmodule = \"nowhere/handlers.py\"\n").unwrap_err();
    assert!(err.message.contains("/srv/nowhere/handlers.py"), "{err}");
}

#[test]
fn a_pool_the_machine_cannot_hold_is_refused_where_its_size_is() {
    let err = parse("[pool]\nmodule = \"app.handlers\"\n\nsize = 100000\n").unwrap_err();
    assert_eq!(err.line, Some(4), "{err}");
    assert!(err.message.contains("ceiling of 1024 workers"), "{err}");
}

#[test]
fn a_directory_given_as_the_module_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snakepen.toml");
    std::fs::create_dir(dir.path().join("handlers.py")).unwrap();
    let err = ServiceConfig::parse(&file, "[pool]\nmodule = \"handlers.py\"\n").unwrap_err();
    assert!(
        err.message.contains("is a directory, not a module"),
        "{err}"
    );
}

#[test]
fn a_limit_the_runtime_cannot_honour_is_refused_naming_its_key_and_most() {
    let err = parse("[limits]\n\nmax_memory_bytes = 8589934592\n").unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    assert!(
        err.message.starts_with("`limits.max_memory_bytes` = 8589934592 (8 GiB) is over the most the runtime can honour, 4294967296 (4 GiB)"),
        "{err}"
    );
    let err = parse("[limits]\nmax_stack_bytes = 1024\n").unwrap_err();
    assert!(
        err.message.contains(
            "`limits.max_stack_bytes` = 1024 (1 KiB) is under the least that works, 65536 (64 KiB)"
        ),
        "{err}"
    );
    for key in [
        "call_timeout_ms",
        "max_table_elements",
        "max_response_bytes",
        "max_instances",
    ] {
        let err = parse(&format!("[limits]\n{key} = 0\n")).unwrap_err();
        assert!(
            err.message.contains(&format!("`limits.{key}` = 0")),
            "{err}"
        );
    }
}

#[test]
fn a_raised_memory_limit_reaches_the_runtime_and_the_host() {
    let config = parse("[limits]\nmax_memory_bytes = 268435456\nmax_instances = 8\n").unwrap();
    let runtime = config
        .runtime_builder(crate::Runtime::builder().no_cache())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(runtime.default_limits().max_memory_bytes, 256 << 20);
    assert_eq!(runtime.default_limits().max_instances, 8);
}

#[test]
fn an_empty_file_means_every_default() {
    let config = parse("").unwrap();
    assert_eq!(config.serve_settings().unwrap(), ServeSettings::default());
    assert_eq!(config.adapter_name(), None);
}

#[test]
fn a_ray_pool_needs_its_section_and_the_section_needs_the_transport() {
    let pool = "[pool]\nmodule = \"app.handlers\"\n";
    let err = parse(&format!("{pool}transport = \"ray\"\n")).unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    assert!(err.message.contains("no `[ray]` section"), "{err}");
    let err = parse(&format!("{pool}\n[ray]\naddress = \"127.0.0.1:6379\"\n")).unwrap_err();
    assert!(err.message.contains("transport = \"ray\""), "{err}");
    let err = parse(&format!("{pool}transport = \"cluster\"\n")).unwrap_err();
    assert!(
        err.message.contains("\"local\"") && err.message.contains("\"ray\""),
        "{err}"
    );
    let err = parse(&format!(
        "{pool}transport = \"ray\"\n[ray]\naddress = \" \"\n"
    ))
    .unwrap_err();
    assert!(err.message.contains("`ray.address` is empty"), "{err}");

    let parsed = parse(&format!(
        "{pool}transport = \"ray\"\n[ray]\naddress = \"10.0.0.5:6379\"\n\
         actor_options = {{ num_cpus = 2, scheduling_strategy = \"SPREAD\", resources = {{ gpu_box = 1 }} }}\n\
         runtime_env = {{ env_vars = {{ A = \"1\" }} }}\n"
    ))
    .unwrap();
    let ray = parsed.pool_config().unwrap().unwrap().ray.unwrap();
    assert_eq!(ray.address, "10.0.0.5:6379");
    assert_eq!(ray.actor_options["num_cpus"], 2);
    assert_eq!(ray.actor_options["scheduling_strategy"], "SPREAD");
    assert_eq!(ray.actor_options["resources"]["gpu_box"], 1);
    assert_eq!(ray.runtime_env["env_vars"]["A"], "1");
    assert_eq!(ray.frames, crate::RayFrames::Direct, "the default path");

    let ray_section = format!("{pool}transport = \"ray\"\n[ray]\naddress = \"auto\"\n");
    let parsed = parse(&format!("{ray_section}frames = \"driver\"\n")).unwrap();
    let ray = parsed.pool_config().unwrap().unwrap().ray.unwrap();
    assert_eq!(ray.frames, crate::RayFrames::Driver);
    let err = parse(&format!("{ray_section}frames = \"tcp\"\n")).unwrap_err();
    assert_eq!(err.line, Some(6), "{err}");
    assert!(
        err.message.contains("`ray.frames` = \"tcp\"") && err.message.contains("\"driver\""),
        "{err}"
    );
}

#[test]
fn named_pools_are_read_with_the_default_first() {
    let parsed = parse(
        "[pools.math]\nmodule = \"app.math\"\nsize = 3\n\n[pools.nlp]\nmodule = \"app.nlp\"\ndefault = true\nmax_concurrency = 20\n",
    )
    .unwrap();
    let pools = parsed.pools().unwrap();
    let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["nlp", "math"]);
    assert_eq!(pools[0].config.max_concurrency, 20);
    assert_eq!(pools[1].config.size, 3);
    assert_eq!(parsed.adapter_name().as_deref(), Some("python-bridge"));
    // [pool] is the pool named `default`, beside named ones.
    let parsed =
        parse("[pools.math]\nmodule = \"app.math\"\n\n[pool]\nmodule = \"app.main\"\n").unwrap();
    let names: Vec<String> = parsed
        .pools()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["default", "math"]);
    // One named pool alone is the default.
    let parsed = parse("[pools.only]\nmodule = \"app.only\"\n").unwrap();
    assert_eq!(parsed.default_pool().unwrap().as_deref(), Some("only"));
}

#[test]
fn named_pools_are_checked_each_with_its_key_and_line() {
    let err =
        parse("[pools.a]\nmodule = \"x\"\ndefault = true\n\n[pools.b]\nmodule = \"y\"\nsize = 0\n")
            .unwrap_err();
    assert_eq!(err.line, Some(7), "{err}");
    assert!(err.message.contains("`pools.b.size`"), "{err}");
    let err = parse("[pools.a]\nmodule = \"x\"\n\n[pools.b]\nmodule = \"y\"\n").unwrap_err();
    assert!(err.message.contains("none is the default"), "{err}");
    assert!(err.message.contains("default = true"), "{err}");
    let err = parse(
        "[pools.a]\nmodule = \"x\"\ndefault = true\n\n[pools.b]\nmodule = \"y\"\ndefault = true\n",
    )
    .unwrap_err();
    assert!(err.message.contains("more than one pool"), "{err}");
    let err = parse("[pools.\"a b\"]\nmodule = \"x\"\n").unwrap_err();
    assert!(err.message.contains("letters, digits"), "{err}");
    let err = parse("[pool]\nmodule = \"x\"\n\n[pools.default]\nmodule = \"y\"\n").unwrap_err();
    assert!(err.message.contains("same pool"), "{err}");
    let err = parse(
        "[pools.a]\nmodule = \"x\"\ndefault = true\n\n[pools.b]\nmodule = \"y\"\n\n[cassette]\npath = \"c.jsonl\"\n",
    )
    .unwrap_err();
    assert!(err.message.contains("several pools"), "{err}");
    let err = parse("[pools.a]\nmodule = \"x\"\ntransport = \"carrier-pigeon\"\n").unwrap_err();
    assert!(err.message.contains("`pools.a.transport`"), "{err}");
}

#[test]
fn ray_is_refused_only_when_no_pool_runs_on_it() {
    let ray = "[ray]\naddress = \"127.0.0.1:6379\"\n";
    let err = parse(&format!("[pools.a]\nmodule = \"x\"\n\n{ray}")).unwrap_err();
    assert!(err.message.contains("run on this machine"), "{err}");
    let parsed = parse(&format!(
        "[pools.a]\nmodule = \"x\"\ndefault = true\n\n[pools.b]\nmodule = \"y\"\ntransport = \"ray\"\n\n{ray}"
    ))
    .unwrap();
    let pools = parsed.pools().unwrap();
    assert!(pools[0].config.ray.is_none());
    assert!(pools[1].config.ray.is_some());
}
