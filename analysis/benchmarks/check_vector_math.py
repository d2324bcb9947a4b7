"""Does this machine keep numpy's vector arithmetic right? A check of the machine, not of bidder.

    python3 analysis/benchmarks/check_vector_math.py              # 20 processes each way, about 2 minutes
    python3 analysis/benchmarks/check_vector_math.py --runs 5 --load 0

Each child process divides an array by itself 200,000 times and counts the results that are not
exactly 1 (IEEE division of a number by itself is exact, so any other result is a wrong answer from
the machine). Half the children run with numpy's AVX2 kernels (the default where the CPU has them),
half with `NPY_DISABLE_CPU_FEATURES=X86_V3` (numpy's SSE kernels). `--load N` keeps N busy numpy
processes running beside them, since the fault shows under load.

Why it exists: on the 2-core Firecracker VMs this project is built on (kernel 6.18), rare test
failures came from arithmetic, not code: `bidder report` over a fixed database gave 9.000007 hours
where the polls add to 9.0, and a share computed as x / x came out 1.000004 and 3.99999997. Runs with
wrong answers, measured with this loop (a first version of this script, with a busy numpy process
beside it): 13 of 55 with AVX2 kernels, 0 of 57 without. `.ci/run`
therefore turns numpy's AVX2 kernels off where numpy has them (results then come from the SSE
kernels, which this machine computes right).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import numpy as np
start = np.array([1767225600.0, 1767229200.0, 1767232800.0, 1767236400.0, 1767240000.0, 1767241800.0])
end = start + np.array([3600.0, 3600.0, 3600.0, 3600.0, 1800.0, 3240.0])
wrong = 0
for _ in range(200_000):
    length = end - start
    wrong += int(np.count_nonzero(length / np.where(length > 0, length, 1.0) != 1.0))
print(wrong)
"""


def run_child(env_extra: dict[str, str]) -> int:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="child processes each way (default 20)")
    parser.add_argument("--load", type=int, default=1, help="busy numpy processes beside them (default 1)")
    args = parser.parse_args(argv)
    busy = "import numpy as np\na = np.random.rand(1500, 1500)\nwhile True: a @ a"
    hogs = [subprocess.Popen([sys.executable, "-c", busy]) for _ in range(args.load)]
    counts: dict[str, list[int]] = {"AVX2 kernels (default)": [], "NPY_DISABLE_CPU_FEATURES=X86_V3": []}
    try:
        for _ in range(args.runs):
            counts["AVX2 kernels (default)"].append(run_child({}))
            counts["NPY_DISABLE_CPU_FEATURES=X86_V3"].append(run_child({"NPY_DISABLE_CPU_FEATURES": "X86_V3"}))
    finally:
        for hog in hogs:
            hog.kill()
    for name, found in counts.items():
        bad = sum(1 for n in found if n)
        print(f"{name:34s} runs with wrong answers: {bad} of {len(found)} (wrong results: {sum(found):,})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
