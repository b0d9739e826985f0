"""Run ``hlcli`` under torchrun with a real failure injected on one rank (tests/test_distributed.py):
``HLCLI_TEST_FAIL=kill:RANK`` SIGKILLs that rank once it has scored a pair; ``sigint:RANK`` sends
SIGINT to the whole process group from there (what Ctrl-C in a terminal does);
``hang:RANK`` makes it sleep for an hour there."""

from __future__ import annotations

import os
import signal
import sys
import time

import hlcli.engine.scoring
from hlcli.cli import main

action, _, rank = os.environ.get("HLCLI_TEST_FAIL", "").partition(":")
if rank and os.environ.get("RANK") == rank:
    scored = hlcli.engine.scoring.pair_results

    def pair_results(*args, **kwargs):
        out = scored(*args, **kwargs)
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "sigint":
            os.killpg(os.getpgid(0), signal.SIGINT)
        elif action == "hang":  # a rank that is alive but never finishes
            time.sleep(3600)
        return out

    hlcli.engine.scoring.pair_results = pair_results

sys.argv[0] = "hlcli"
main()
