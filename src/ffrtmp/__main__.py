"""``python -m ffrtmp``: the wrapper's modes go straight to the wrapper; all else to the CLI.

A wrapper starts once per job and its workload waits for it, so ``wrapper run|attach|standby``
never imports the CLI, its parser or the settings table.
"""

import sys

WRAPPER_MODES = ("run", "attach", "standby")


def _main() -> None:
    words = sys.argv[1:]
    if words[:1] == ["wrapper"] and words[1:2] and words[1] in WRAPPER_MODES:
        if words[1] == "run":
            from ffrtmp.wrapper.run import main
        elif words[1] == "attach":
            from ffrtmp.wrapper.attach import main
        else:
            from ffrtmp.wrapper.standby import main
        sys.exit(main(words[2:]))
    from ffrtmp.cli.main import run

    run()


_main()
