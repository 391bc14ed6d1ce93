"""The Prometheus text format (0.0.4) of GET /metrics, parsed strictly:
every line must parse and no sample may come twice.  scrape() asks the
daemon and checks the Content-Type; metric_value() reads one sample of a
text already fetched; and two checks on parsed expositions.
"""

import re

from e2e_http import get


_SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$')

_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"'
                       r'\s*(?:,|$)')

COUNTERS = ("hitcountd_http_requests_total", "hitcountd_visits_total",
            "hitcountd_redis_errors_total", "hitcountd_redis_reconnects_total",
            "hitcountd_redis_redirects_total",
            "hitcountd_reloads_total", "hitcountd_worker_restarts_total",
            "hitcountd_redis_roundtrip_seconds_count",
            "hitcountd_redis_roundtrip_seconds_bucket")


class Metrics:
    """A parsed text exposition (format 0.0.4)."""

    def __init__(self, text):
        self.text = text
        self.samples = {}          # (name, ((label, value), ...)) -> float
        self.types = {}
        for line in text.split("\n"):
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 4 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3]
                continue
            m = _SAMPLE_RE.match(line)
            assert m, "unparseable metrics line %r in:\n%s" % (line, text)
            name, labels_text, value = m.group(1), m.group(2), m.group(3)
            labels = {}
            if labels_text:
                pos = 0
                while pos < len(labels_text):
                    lm = _LABEL_RE.match(labels_text, pos)
                    assert lm, "bad labels in %r" % (line,)
                    labels[lm.group(1)] = lm.group(2)
                    pos = lm.end()
            key = (name, tuple(sorted(labels.items())))
            assert key not in self.samples, "duplicate sample %r" % (line,)
            self.samples[key] = float(value)

    def get(self, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        assert key in self.samples, "no sample %s%r in:\n%s" % (
            name, labels, self.text)
        return self.samples[key]

    def code(self, code):
        return self.get("hitcountd_http_requests_total", code=str(code))

    def counters(self):
        """All samples of counters (and histogram counts/buckets)."""
        return {k: v for k, v in self.samples.items() if k[0] in COUNTERS}

    def buckets(self, name):
        out = []
        for (n, labels), v in self.samples.items():
            if n == name + "_bucket":
                le = dict(labels)["le"]
                out.append((float("inf") if le == "+Inf" else float(le), v))
        return sorted(out)


def scrape(port, path="/metrics"):
    r = get(port, path, timeout=5)
    assert r.status == 200, r
    ctype = r.header("Content-Type") or ""
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, \
        "Content-Type %r" % ctype
    return Metrics(r.text)


def metric_value(text, name, **labels):
    """Value of one sample of an exposition, e.g.
    metric_value(text, "hitcountd_http_requests_total", code="200");
    AssertionError if it is missing."""
    return Metrics(text).get(name, **labels)


def assert_histogram_sane(m, name="hitcountd_redis_roundtrip_seconds"):
    assert m.types.get(name) == "histogram", m.types
    bk = m.buckets(name)
    assert bk and bk[-1][0] == float("inf"), bk
    counts = [v for _, v in bk]
    assert counts == sorted(counts), "buckets not cumulative: %r" % (bk,)
    assert bk[-1][1] == m.get(name + "_count"), \
        "+Inf bucket %r != _count %r" % (bk[-1][1], m.get(name + "_count"))
    assert m.get(name + "_sum") >= 0


def assert_counters_not_lower(before, after, what):
    lower = {k: (v, after.samples.get(k)) for k, v in before.counters().items()
             if after.samples.get(k) is None or after.samples[k] < v}
    assert not lower, "counters went down %s: %r (before -> after)" % (
        what, lower)
