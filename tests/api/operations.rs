//! The operator's view: `/metrics` after a few requests (names, types, HELP,
//! bounded labels), the dashboard and alert rules in `deploy/` naming only
//! exported metrics, and the deployment files (compose, Dockerfile).

use std::collections::{BTreeSet, HashMap};

use passerelle::telemetry::metrics::{CATALOGUE, Kind, RATE_LIMIT_REFUSALS};

use passerelle::auth::IssuerConfig;

use crate::helpers::{StoreKind, repository_path, spawn_app_with};
use crate::test_both_stores;

const CONSO: &str = "/api/v1/data/consommations-energie-batiments";

/// One parsed Prometheus text exposition: `# TYPE`, `# HELP`, and the
/// label sets of each sample, by metric family.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    help: HashMap<String, String>,
    samples: HashMap<String, Vec<HashMap<String, String>>>,
}

fn parse_exposition(text: &str) -> Exposition {
    let mut exposition = Exposition::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            exposition.types.insert(name.to_owned(), kind.to_owned());
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            exposition.help.insert(name.to_owned(), help.to_owned());
        } else if !line.is_empty() && !line.starts_with('#') {
            let series = line.rsplit_once(' ').expect("sample line").0;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| (key.to_owned(), value.trim_matches('"').to_owned()))
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| {
                    exposition
                        .types
                        .get(*family)
                        .is_some_and(|kind| kind == "histogram")
                })
                .unwrap_or(name);
            exposition
                .samples
                .entry(family.to_owned())
                .or_default()
                .push(labels);
        }
    }
    exposition
}

impl Exposition {
    /// True when some sample of `name` carries all these labels.
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.samples.get(name).is_some_and(|samples| {
            samples.iter().any(|sample| {
                labels
                    .iter()
                    .all(|(key, value)| sample.get(*key).map(String::as_str) == Some(*value))
            })
        })
    }
}

/// The metric names a PromQL expression uses (`_bucket`, `_sum`, `_count`
/// folded into their histogram).
fn metric_names(expression: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expression.as_bytes();
    let mut start = 0;
    while let Some(offset) = expression[start..].find("passerelle_") {
        let begin = start + offset;
        let mut end = begin;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &expression[begin..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|family| {
                CATALOGUE
                    .iter()
                    .any(|metric| metric.name == *family && metric.kind == Kind::Histogram)
            })
            .unwrap_or(name);
        names.insert(family.to_owned());
        start = end;
    }
    names
}

/// The expressions of the Grafana dashboard and of the alert rules.
fn deploy_expressions() -> Vec<(String, String)> {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repository_path("deploy/grafana/passerelle-dashboard.json"))
            .expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut expressions = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default();
            expressions.push((
                format!("dashboard panel `{title}`"),
                target["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repository_path("deploy/prometheus/alerts.yml")).expect("rules"),
    )
    .expect("the alert rules are YAML");
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name");
            expressions.push((
                format!("alert `{name}`"),
                rule["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    expressions
}

/// After a JSON read (twice: a cache miss then a hit), a CSV export, a
/// bad token and an unknown route, `/metrics` has every metric with its
/// HELP, its TYPE (histograms, not summaries), and bounded labels: the
/// route template, never the raw path. The dashboard and the alert
/// rules name only metrics the gateway exports. An identity provider whose
/// keys cannot be fetched is configured, so that its failed fetch counts.
async fn metrics_after_a_few_requests(kind: StoreKind) {
    let Some(app) = spawn_app_with(kind, |settings| {
        settings.auth.issuers.push(IssuerConfig {
            name: "sso-down".to_owned(),
            issuer: "https://sso.example".to_owned(),
            audiences: vec!["passerelle".to_owned()],
            algorithms: vec!["RS256".to_owned()],
            // The discard port: nothing answers there.
            jwks_url: Some("http://127.0.0.1:9/jwks".to_owned()),
            ..IssuerConfig::default()
        });
    })
    .await
    else {
        return;
    };
    {
        for _ in 0..2 {
            assert_eq!(app.get(&format!("{CONSO}?limit=3")).await.status(), 200);
        }
        let export = app.get(&format!("{CONSO}?format=csv&limit=5")).await;
        assert_eq!(export.status(), 200);
        export.bytes().await.expect("the export ends");
        assert_eq!(app.get_as(CONSO, "not-a-token").await.status(), 401);
        assert_eq!(app.get("/api/v1/nothing/here").await.status(), 404);

        // The export's line is written when its body ends, just after the
        // client has it, and the keys are fetched in the background: wait
        // for both to be counted.
        let mut exposition = Exposition::default();
        for _ in 0..50 {
            let response = app.get("/metrics").await;
            assert_eq!(response.status(), 200);
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(content_type.starts_with("text/plain"), "{content_type}");
            exposition = parse_exposition(&response.text().await.unwrap());
            let counted = exposition.has(
                "passerelle_rows_sent_total",
                &[
                    ("dataset", "consommations-energie-batiments"),
                    ("format", "csv"),
                ],
            ) && exposition
                .has("passerelle_jwks_fetches_total", &[("issuer", "sso-down")]);
            if counted {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }

        for metric in CATALOGUE {
            if metric.name == RATE_LIMIT_REFUSALS {
                // Counted only once a limit refuses a request.
                continue;
            }
            assert_eq!(
                exposition.types.get(metric.name).map(String::as_str),
                Some(metric.kind.as_str()),
                "TYPE of {}",
                metric.name
            );
            assert_eq!(
                exposition.help.get(metric.name).map(String::as_str),
                Some(metric.help),
                "HELP of {}",
                metric.name
            );
            let samples = exposition.samples.get(metric.name).expect(metric.name);
            for sample in samples {
                let mut keys: Vec<&str> = sample
                    .keys()
                    .map(String::as_str)
                    .filter(|key| *key != "le")
                    .collect();
                keys.sort_unstable();
                let mut expected = metric.labels.to_vec();
                expected.sort_unstable();
                assert_eq!(keys, expected, "labels of {}", metric.name);
            }
        }
        assert!(
            !exposition.types.values().any(|kind| kind == "summary"),
            "no summaries"
        );

        let requests = "passerelle_http_requests_total";
        let read = [
            ("route", "/api/v1/data/{id}"),
            ("method", "GET"),
            ("status_class", "2xx"),
        ];
        assert!(exposition.has(requests, &read));
        assert!(exposition.has(
            requests,
            &[("route", "/api/v1/data/{id}"), ("status_class", "4xx")]
        ));
        assert!(exposition.has(requests, &[("route", "unmatched"), ("status_class", "4xx")]));
        assert!(exposition.has(
            "passerelle_http_request_duration_seconds",
            &[("route", "/api/v1/data/{id}"), ("le", "+Inf")]
        ));
        let sent = [
            ("dataset", "consommations-energie-batiments"),
            ("format", "json"),
        ];
        assert!(exposition.has("passerelle_rows_sent_total", &sent));
        assert!(exposition.has("passerelle_bytes_sent_total", &sent));
        assert!(exposition.has(
            "passerelle_decisions_total",
            &[("action", "read"), ("decision", "allow")]
        ));
        assert!(exposition.has(
            "passerelle_decisions_total",
            &[("action", "export"), ("decision", "allow")]
        ));
        assert!(exposition.has(
            "passerelle_jwks_fetches_total",
            &[("issuer", "sso-down"), ("outcome", "failed")]
        ));
        assert!(exposition.has("passerelle_page_cache_lookups_total", &[("result", "hit")]));
        assert!(exposition.has("passerelle_page_cache_lookups_total", &[("result", "miss")]));
        for pool in ["main", "exports", "audit"] {
            assert!(
                exposition.has(
                    "passerelle_db_pool_connections",
                    &[("pool", pool), ("state", "in_use")]
                ),
                "{pool}"
            );
            assert!(
                exposition.has("passerelle_db_pool_max_connections", &[("pool", pool)]),
                "{pool}"
            );
        }
        assert!(exposition.has("passerelle_policy_reloads_total", &[("outcome", "failed")]));
        // No raw path, query or subject ever becomes a label value.
        for (name, samples) in &exposition.samples {
            for sample in samples {
                for value in sample.values() {
                    assert!(
                        !value.contains("/api/v1/data/consommations") && !value.contains("limit="),
                        "{name}: {value}"
                    );
                    assert!(!value.contains("nothing/here"), "{name}: {value}");
                }
            }
        }

        // The dashboard and the alert rules name exported metrics only.
        let exported: BTreeSet<&str> = exposition.types.keys().map(String::as_str).collect();
        let expressions = deploy_expressions();
        assert!(expressions.len() >= 20, "{}", expressions.len());
        let mut used = BTreeSet::new();
        for (place, expression) in &expressions {
            for name in metric_names(expression) {
                assert!(
                    exported.contains(name.as_str()) || name == RATE_LIMIT_REFUSALS,
                    "{place} names `{name}`, which the gateway does not export"
                );
                used.insert(name);
            }
        }
        // Every metric is on the dashboard.
        for metric in CATALOGUE {
            assert!(used.contains(metric.name), "{} is on no panel", metric.name);
        }
    }
}

test_both_stores!(metrics_after_a_few_requests);

/// The alert rules the operator needs are there.
#[test]
fn alert_rules_cover_the_incidents() {
    let names: Vec<String> = deploy_expressions()
        .into_iter()
        .filter_map(|(place, _)| place.strip_prefix("alert ").map(str::to_owned))
        .collect();
    for alert in [
        "PasserelleAuditWriteFailing",
        "PasserelleHigh5xxRatio",
        "PasserelleJwksFetchFailing",
        "PasserellePolicyReloadFailed",
    ] {
        assert!(
            names.contains(&format!("`{alert}`")),
            "{alert} in {names:?}"
        );
    }
}

/// docker-compose.yml: PostgreSQL, Redis and the gateway, the catalogue and
/// the policies mounted from the repository (so hot reload works). Checked
/// by `docker compose config -q` (or `docker-compose`) when one is
/// installed, and always by reading the file.
#[test]
fn compose_stack() {
    let file = repository_path("docker-compose.yml");
    let tools: [&[&str]; 2] = [&["docker", "compose"], &["docker-compose"]];
    for tool in tools {
        let available = std::process::Command::new(tool[0])
            .args(&tool[1..])
            .arg("version")
            .output()
            .is_ok_and(|output| output.status.success());
        if available {
            let output = std::process::Command::new(tool[0])
                .args(&tool[1..])
                .arg("-f")
                .arg(&file)
                .args(["config", "-q"])
                .output()
                .expect("compose runs");
            assert!(
                output.status.success(),
                "{tool:?} config: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            break;
        }
    }
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&file).unwrap()).expect("YAML");
    let services = &compose["services"];
    for service in ["postgres", "redis", "gateway"] {
        assert!(services[service].is_mapping(), "service {service}");
    }
    let gateway = &services["gateway"];
    let volumes: Vec<&str> = gateway["volumes"]
        .as_sequence()
        .expect("gateway volumes")
        .iter()
        .filter_map(|volume| volume.as_str())
        .collect();
    assert!(
        volumes
            .iter()
            .any(|volume| volume.starts_with("./catalog:/app/catalog")),
        "{volumes:?}"
    );
    assert!(
        volumes
            .iter()
            .any(|volume| volume.starts_with("./policies:/app/policies")),
        "{volumes:?}"
    );
    assert!(gateway["depends_on"]["redis"].is_mapping());
    assert!(gateway["depends_on"]["postgres"].is_mapping());
    assert!(compose["volumes"]["pgdata"].is_null() || compose["volumes"]["pgdata"].is_mapping());

    // Two replicas behind nginx; only nginx is published, and its address
    // is the one proxy the gateways believe.
    assert_eq!(gateway["deploy"]["replicas"].as_u64(), Some(2));
    assert!(gateway["ports"].is_null(), "replicas publish no port");
    assert_eq!(
        gateway["healthcheck"]["test"],
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(r#"["CMD", "passerelle", "health"]"#)
            .unwrap()
    );
    for service in ["postgres", "redis", "gateway", "loadbalancer"] {
        assert!(
            services[service]["healthcheck"]["test"].is_sequence(),
            "health check of {service}"
        );
    }
    let balancer = &services["loadbalancer"];
    assert!(
        balancer["image"]
            .as_str()
            .is_some_and(|image| image.starts_with("nginx:"))
    );
    assert_eq!(
        balancer["depends_on"]["gateway"]["condition"].as_str(),
        Some("service_healthy")
    );
    assert_eq!(balancer["ports"][0].as_str(), Some("8080:8080"));
    let proxy = balancer["networks"]["backend"]["ipv4_address"]
        .as_str()
        .expect("the load balancer's fixed address");
    assert_eq!(
        gateway["environment"]["PASSERELLE_SERVER__TRUSTED_PROXIES"].as_str(),
        Some(format!("[\"{proxy}\"]").as_str())
    );
    let mounted = balancer["volumes"][0]
        .as_str()
        .expect("nginx configuration");
    let (host_path, _) = mounted.split_once(':').unwrap();
    let nginx = std::fs::read_to_string(repository_path(host_path)).expect("nginx configuration");
    for directive in [
        "server gateway:8080 resolve",
        "proxy_pass http://passerelle;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_buffering off;",
    ] {
        assert!(nginx.contains(directive), "{directive} in {host_path}");
    }
}

/// The manifests of deploy/kubernetes/, read as a list of documents by file.
fn kubernetes_manifests() -> Vec<(String, serde_yaml_ng::Value)> {
    let folder = repository_path("deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let value =
                serde_yaml_ng::from_str(&text).unwrap_or_else(|error| panic!("{name}: {error}"));
            (name, value)
        })
        .collect()
}

/// Runs `kubernetes-validate --strict` (PyPI; installed by .ci/run) on
/// `files`; `None` when it is not installed outside CI.
fn kubernetes_validate(files: &[std::path::PathBuf]) -> Option<std::process::Output> {
    let output = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--quiet"])
        .args(files)
        .output();
    match output {
        Ok(output) => Some(output),
        Err(error) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping the schema validation outside CI: {error}");
            None
        }
        Err(error) => panic!("kubernetes-validate is required in CI: {error}"),
    }
}

/// deploy/kubernetes/: every manifest passes the Kubernetes schemas
/// (strict: an unknown field fails, as a mistyped one does below); the
/// Deployment probes the health endpoints, requests resources, runs as a
/// user on a read-only root filesystem and takes its secrets from a Secret;
/// the policies' ConfigMap holds the repository's policy files.
#[test]
fn kubernetes_deployment() {
    let manifests = kubernetes_manifests();
    let folder = repository_path("deploy/kubernetes");
    let files: Vec<_> = manifests
        .iter()
        .filter(|(name, _)| name != "kustomization.yaml")
        .map(|(name, _)| folder.join(name))
        .collect();
    if let Some(output) = kubernetes_validate(&files) {
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let scratch = tempfile::tempdir().unwrap();
        let mistyped = scratch.path().join("deployment.yaml");
        let text = std::fs::read_to_string(folder.join("deployment.yaml")).unwrap();
        std::fs::write(&mistyped, text.replace("readinessProbe:", "readinesProbe:")).unwrap();
        let output = kubernetes_validate(&[mistyped]).expect("validator present");
        assert!(!output.status.success(), "a mistyped field is refused");
    }

    let find = |kind: &str| -> &serde_yaml_ng::Value {
        manifests
            .iter()
            .map(|(_, value)| value)
            .find(|value| value["kind"].as_str() == Some(kind))
            .unwrap_or_else(|| panic!("a {kind}"))
    };
    let kustomization = find("Kustomization");
    let listed: Vec<&str> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|resource| resource.as_str())
        .collect();
    for (name, value) in &manifests {
        let expected = !matches!(value["kind"].as_str(), Some("Kustomization" | "Secret"));
        assert_eq!(
            listed.contains(&name.as_str()),
            expected,
            "{name} in the kustomization"
        );
    }

    let deployment = find("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let container = &pod["containers"][0];
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/health/ready")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/health/live")
    );
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["requests"]["memory"].is_string());
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].as_u64(),
        Some(0)
    );
    let secret_of = |variable: &str| {
        container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|entry| entry["name"].as_str() == Some(variable))
            .and_then(|entry| entry["valueFrom"]["secretKeyRef"]["name"].as_str())
    };
    for variable in [
        "DATABASE_URL",
        "PASSERELLE_LIMITS__REDIS_URL",
        "PASSERELLE_AUTH__ISSUER",
    ] {
        assert_eq!(
            secret_of(variable),
            Some("passerelle"),
            "{variable} from the Secret"
        );
    }
    let policies_mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|mount| mount["name"].as_str() == Some("policies"))
        .expect("policies mounted");
    let policies_dir = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|entry| entry["name"].as_str() == Some("PASSERELLE_POLICIES_DIR"))
        .and_then(|entry| entry["value"].as_str());
    assert_eq!(policies_dir, policies_mount["mountPath"].as_str());

    let config_map = find("ConfigMap");
    assert_eq!(
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|volume| volume["name"].as_str() == Some("policies"))
            .and_then(|volume| volume["configMap"]["name"].as_str()),
        config_map["metadata"]["name"].as_str()
    );
    for file in ["model.conf", "policy.csv"] {
        let in_repository =
            std::fs::read_to_string(repository_path(&format!("policies/{file}"))).unwrap();
        assert_eq!(
            config_map["data"][file].as_str(),
            Some(in_repository.as_str()),
            "deploy/kubernetes/configmap-policies.yaml holds policies/{file}"
        );
    }

    let autoscaler = find("HorizontalPodAutoscaler");
    assert_eq!(
        autoscaler["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert!(autoscaler["spec"]["minReplicas"].as_u64() >= Some(2));
    let service = find("Service");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

/// The Dockerfile's health check runs the binary (no shell: `/dev/tcp` is a
/// bash feature and the image's `sh` is dash), on Debian stable, as a user.
#[test]
fn dockerfile_health_check_uses_the_binary() {
    let dockerfile = std::fs::read_to_string(repository_path("Dockerfile")).unwrap();
    let instruction = |name: &str| -> Vec<String> {
        dockerfile
            .replace("\\\n", " ")
            .lines()
            .filter(|line| line.trim_start().starts_with(name))
            .map(str::to_owned)
            .collect()
    };
    let health = instruction("HEALTHCHECK").join("");
    assert!(
        health.contains(r#"CMD ["passerelle", "health"]"#),
        "{health}"
    );
    assert!(!dockerfile.contains("/dev/tcp"));
    assert!(
        instruction("FROM")
            .iter()
            .all(|from| from.contains("trixie")),
        "{:?}",
        instruction("FROM")
    );
    let users = instruction("USER");
    assert!(
        users.last().is_some_and(|user| !user.contains("root")),
        "{users:?}"
    );
    let ignored = std::fs::read_to_string(repository_path(".dockerignore")).unwrap();
    assert!(
        ignored
            .lines()
            .any(|line| line.trim_end_matches('/') == "target")
    );
    // The build copies only the manifest, src/ and migrations/: a target
    // section naming a file elsewhere (tests/, benches/) breaks the image.
    let manifest = std::fs::read_to_string(repository_path("Cargo.toml")).unwrap();
    for section in ["[[test]]", "[[bench]]", "[[example]]"] {
        assert!(
            !manifest.lines().any(|line| line.trim() == section),
            "{section} in Cargo.toml"
        );
    }
}
