"""Reading iscsi-test-cu's CUnit output: the summary counts, which tests skipped and which failed.

CUnit counts a skipped test as passed, so skips are found from the tool's "[SKIPPED]" lines per
test; the start-up capability probe prints its own "[SKIPPED]"-free notice line, and the lines
printed before the suite starts are not counted.
"""

import re

SUMMARY = re.compile(r"^\s+tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", re.M)
PROBE_LINE = "PERSISTENT RESERVE IN is not implemented."


class CunitResult:
    def __init__(self, total, ran, passed, failed, skipped, failures):
        self.total, self.ran, self.passed, self.failed = total, ran, passed, failed
        self.skipped, self.failures = skipped, failures


def parse(text):
    """The run's counts, skipped and failed test names; None when there is no CUnit summary."""
    m = SUMMARY.search(text)
    if not m:
        return None
    total, ran, passed, failed = map(int, m.groups())
    body = text[text.find("Suite:"):m.start()] if "Suite:" in text else ""
    skipped, failures = set(), set()
    for chunk in body.split("  Test: ")[1:]:
        name = chunk.split(" ...", 1)[0].strip()
        if "[SKIPPED]" in chunk.replace(PROBE_LINE, ""):
            skipped.add(name)
        # A failed test's verdict is a bare FAILED; "[FAILED] ..." lines are the tool's messages
        # about single commands, printed also by tests that expect the command to fail.
        if "FAILED" in chunk.replace("[FAILED]", ""):
            failures.add(name)
    return CunitResult(total, ran, passed, failed, skipped, failures)
