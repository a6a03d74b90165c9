//! The bake window against a real Prometheus (Debian's package, a private instance on
//! a loopback port scraping the sample app's `/metrics` every second): a rising error
//! counter is a regression; an empty vector, NaN and a server that is down are never
//! one, and are reported.

use std::time::Duration;

use lastgood_testkit::Config;
use lastgood_testkit::prometheus::Prometheus;

use crate::env_with_versions;

fn signal(url: &str, name: &str, query: &str, threshold: &str) -> String {
    format!(
        "\n[[environments.production.monitor.signals]]\nname = \"{name}\"\nprometheus = \"{url}\"\nquery = \"{query}\"\n{threshold}\n"
    )
}

#[test]
fn prometheus_errors_counter_regression_and_no_data_cases() {
    let mut env = env_with_versions(1);
    let prom = Prometheus::scraping(&format!("127.0.0.1:{}", env.port));
    let down = format!("http://127.0.0.1:{}", lastgood_testkit::free_port());
    let mut signals = String::from(
        "[environments.production.monitor]\nduration = \"30s\"\ninterval = \"1s\"\nfailures = 2\nchecks = false\nprocess = false\n",
    );
    signals += &signal(&prom.url, "errors", "sum(max_over_time(sample_app_errors_total[{since}]))", "max = 0");
    signals += &signal(&prom.url, "empty", "sum(no_such_metric_anywhere)", "max = 1");
    signals += &signal(&prom.url, "nan", "0/0", "max = 1");
    signals += &signal(&down, "outage", "up", "min = 1");
    env.configure(&Config::new().table(&signals));
    env.test().args(["deploy", "production", "v1", "--reason", "first", "--no-monitor"]).run();
    env.commit_version("v2", &[]);
    env.commit_version("v3", &[]);

    // A clean release: no data, NaN and an outage for its whole window never roll back.
    env.test()
        .args(["deploy", "production", "v2", "--reason", "clean", "--monitor", "5s"])
        .stderr_has("empty no-data (the query returned an empty vector")
        .stderr_has("nan no-data (the query returned NaN")
        .stderr_has("outage error (cannot connect to")
        .run();
    assert_eq!(env.state_of(2), "good");

    // A release whose error counter rises is rolled back.
    env.write("app.env", "HEALTH=ok\nFAIL_AFTER=1\n");
    std::thread::sleep(Duration::from_secs(2));
    env.test()
        .args(["deploy", "production", "v3", "--reason", "goes bad"])
        .status(1)
        .stderr_has("regression of signal `errors`")
        .stderr_has("threshold <= 0")
        .run();
    assert_eq!(env.state_of(3), "failed");
    assert_eq!(env.serving().as_deref(), Some("v2"));
}
