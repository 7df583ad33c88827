"""A real Prometheus (Debian's /usr/bin/prometheus) for e2e tests, and promtool helpers.

    prom = Prometheus(workdir, {"operator": ["127.0.0.1:8080"]}, rule_files=[rules]).start()
    prom.wait_for_targets_up()
    prom.query('sum(vios_operator_leader)')   # the result vector; raises on any API error
    prom.stop()

It listens on 127.0.0.1 on a free port, keeps its TSDB in workdir, scrapes every second, and is
stopped (SIGTERM, then SIGKILL) by stop(). Nothing outside workdir is written.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

from . import procs

PROMETHEUS = os.environ.get("VIOS_PROMETHEUS", "/usr/bin/prometheus")
PROMTOOL = os.environ.get("VIOS_PROMTOOL", "/usr/bin/promtool")


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    def __init__(self, workdir, jobs, rule_files=(), scrape_interval="1s"):
        """jobs: {job name: ["host:port", ...]}; rule_files: rules files to load (evaluated every
        scrape_interval too)."""
        self.workdir = workdir
        self.jobs = jobs
        self.rule_files = list(rule_files)
        self.scrape_interval = scrape_interval
        self.port = None
        self.proc = None
        self.log_path = os.path.join(workdir, "prometheus.log")

    def config(self):
        return {
            "global": {"scrape_interval": self.scrape_interval,
                       "evaluation_interval": self.scrape_interval,
                       "scrape_timeout": self.scrape_interval},
            "rule_files": self.rule_files,
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(targets)}]}
                for job, targets in sorted(self.jobs.items())
            ],
        }

    def start(self, timeout=60.0):
        os.makedirs(self.workdir, exist_ok=True)
        config_path = os.path.join(self.workdir, "prometheus.yml")
        with open(config_path, "w") as f:
            yaml.safe_dump(self.config(), f)
        check = subprocess.run([PROMTOOL, "check", "config", config_path],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise PrometheusError("promtool check config: %s%s" % (check.stdout, check.stderr))
        self.port = procs.free_port()
        argv = [PROMETHEUS,
                "--config.file=" + config_path,
                "--storage.tsdb.path=" + os.path.join(self.workdir, "data"),
                "--web.listen-address=127.0.0.1:%d" % self.port,
                "--web.console.templates=" + os.path.join(self.workdir, "consoles"),
                "--web.console.libraries=" + os.path.join(self.workdir, "console_libraries"),
                "--log.level=warn"]
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrometheusError("prometheus exited with %s:\n%s"
                                      % (self.proc.returncode, self.log()[-3000:]))
            try:
                with urllib.request.urlopen(self.url("/-/ready"), timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        raise PrometheusError("prometheus not ready after %.0fs:\n%s" % (timeout, self.log()[-3000:]))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def api(self, path, **params):
        """GET /api/v1/<path>; returns "data", raises PrometheusError on any error status."""
        url = self.url("/api/v1/" + path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
            raise PrometheusError("%s: %s %s: %s" % (url, e.code, body.get("errorType"),
                                                     body.get("error")))
        if body.get("status") != "success":
            raise PrometheusError("%s: %s" % (url, body))
        if body.get("warnings"):
            raise PrometheusError("%s: warnings %s" % (url, body["warnings"]))
        return body["data"]

    def query(self, expr):
        """An instant query; returns the result list (empty when no series match)."""
        return self.api("query", query=expr)["result"]

    def targets(self):
        return self.api("targets")["activeTargets"]

    def wait_for_targets_up(self, timeout=60.0, scrapes=3):
        """Waits until every target is up and has been scraped `scrapes` times (so rate() over a
        short window has points)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            targets = self.targets()
            if targets and all(t["health"] == "up" for t in targets):
                counts = self.query("count_over_time(up[1m])")
                if len(counts) == len(targets) and all(
                        float(s["value"][1]) >= scrapes for s in counts):
                    return targets
            time.sleep(0.5)
        raise PrometheusError("targets not all up: %s" % json.dumps(
            [(t["scrapeUrl"], t["health"], t.get("lastError")) for t in self.targets()]))

    def rules(self):
        return self.api("rules")["groups"]

    def stop(self):
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None


def fetch(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def check_metrics(text):
    """promtool check metrics on an exposition; returns (returncode, problems text)."""
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip()
