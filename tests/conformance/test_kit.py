#!/usr/bin/env python3
"""The conformance kit's own test: on a dev broker of its own, the kit passes a correct fake
participant (tests/conformance/fake_participant.py) and, for each deliberately broken variant,
FAILs exactly the rules that variant breaks while the others still pass.

Run by ctest (conformance_kit) with the venv's python; needs SAGA_SOURCE_DIR and BUILD_DIR.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

SRC = os.environ["SAGA_SOURCE_DIR"]
BUILD = os.environ["BUILD_DIR"]
KIT = os.path.join(SRC, "tools/conformance/sagaconform.py")
FAKE = os.path.join(SRC, "tests/conformance/fake_participant.py")
RULES = ["basic", "duplicate", "new_attempt", "compensation_first", "late_action", "max_ids", "reply_partition",
         "malformed", "crash"]

# variant -> (rules the kit must FAIL, whether the crash rule runs: kill and restart commands given)
VARIANTS = {
    "correct": (set(), True),
    "apply_duplicates": ({"duplicate", "new_attempt"}, False),
    "resend_verbatim": ({"new_attempt", "late_action"}, False),
    "duplicate_new_id": ({"duplicate", "late_action"}, False),
    "no_compensation_mark": ({"compensation_first"}, False),
    "crash_on_malformed": ({"malformed"}, False),
    "unknown_success": ({"malformed"}, False),
    "truncate_ids": ({"max_ids"}, False),
    "wrong_partition": ({"reply_partition"}, False),
    "commit_early": ({"crash"}, True),
}


def start_broker(tmp):
    boot = os.path.join(tmp, "bootstrap")
    log = open(os.path.join(tmp, "sagabroker.log"), "w")
    proc = subprocess.Popen([os.path.join(BUILD, "bin/sagabroker"), "--bootstrap-file", boot], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    for _ in range(300):
        if os.path.exists(boot) and open(boot).read().strip():
            return proc, open(boot).read().split()[0]
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit("test_kit: sagabroker did not write its bootstrap file (sagabroker.log)")


def run_variant(tmp, bootstrap, variant):
    """Starts the fake with the variant's break, runs the kit, returns (ok, report)."""
    want_fail, crash = VARIANTS[variant]
    topic, db, pidf, logf = (f"fake-{variant}.commands", os.path.join(tmp, f"{variant}.db"),
                             os.path.join(tmp, f"{variant}.pid"), os.path.join(tmp, f"{variant}.log"))
    fake = [sys.executable, FAKE, "--bootstrap", bootstrap, "--topic", topic, "--group", f"fake-{variant}",
            "--db", db, "--delay-ms", "20"] + ([] if variant == "correct" else ["--break", variant])
    # detached (setsid, the shell exits): kill -9 leaves no zombie for kill -0 to find
    start = f"setsid {shlex.join(fake)} </dev/null >>{shlex.quote(logf)} 2>&1 & echo $! >{shlex.quote(pidf)}"
    subprocess.run(["sh", "-c", start], check=True)
    kit = [sys.executable, KIT, "--bootstrap", bootstrap, "--topic", topic, "--action", "fake.apply",
           "--compensation", "fake.undo", "--payload", '{"note":"for ${saga_id}"}', "--reply-timeout", "5",
           "--applied-sql", db, "SELECT count(*) FROM applied WHERE saga_id = ?"]
    if crash:
        kit += ["--kill-cmd", f"kill -9 $(cat {shlex.quote(pidf)})", "--restart-cmd", start]
    t0 = time.monotonic()
    out = subprocess.run(kit, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    subprocess.run(["sh", "-c", f"kill -9 $(cat {shlex.quote(pidf)}) 2>/dev/null"], check=False)
    verdicts = dict((m.group(2), m.group(1)) for m in re.finditer(r"^(PASS|FAIL|SKIP) (\w+):", out.stdout, re.M))
    problems = []
    for rule in RULES:
        got = verdicts.get(rule)
        want = "FAIL" if rule in want_fail else ("SKIP" if rule == "crash" and not crash else "PASS")
        if got != want:
            problems.append(f"rule {rule}: {got or 'no line'}, expected {want}")
    want_rc = 1 if want_fail else 0
    if out.returncode != want_rc:
        problems.append(f"exit status {out.returncode}, expected {want_rc}")
    report = f"{'ok' if not problems else 'not ok'} - {variant}: FAIL {sorted(want_fail) or 'none'} ({took:.1f} s)"
    if problems:
        report += "\n  " + "\n  ".join(problems) + "\n  kit output:\n" + out.stdout + out.stderr
        report += "\n  fake log tail:\n" + "".join(open(logf).readlines()[-10:])
    return not problems, report


def main():
    tmp = tempfile.mkdtemp(prefix="sagad-conformance-kit-")
    broker, bootstrap = start_broker(tmp)
    ok = True
    try:
        with ThreadPoolExecutor(3) as pool:
            for passed, report in pool.map(lambda v: run_variant(tmp, bootstrap, v), VARIANTS):
                print(report, flush=True)
                ok &= passed
    finally:
        for v in VARIANTS:  # a fake left running by a variant that stopped halfway
            pidf = os.path.join(tmp, f"{v}.pid")
            if os.path.exists(pidf):
                subprocess.run(["sh", "-c", f"kill -9 $(cat {shlex.quote(pidf)}) 2>/dev/null"], check=False)
        broker.terminate()
        broker.wait(10)
    if ok:
        shutil.rmtree(tmp)
        print(f"{len(VARIANTS)} variants passed, 0 failed")
        return 0
    print(f"FAILED; files kept in {tmp}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
