"""The `mimcast` command: train, evaluate, predict, bench, experiment.

Bad input anywhere gives one line `mimcast: error: ...` on stderr and exit code 2, with no
traceback and nothing written. Other exit codes: 1 when a file cannot be written (a full disk,
a read-only folder; one line too), 130 / 143 / 129 when training was stopped by SIGINT /
SIGTERM / SIGHUP after saving a checkpoint (continue with --resume), 130 for a second Ctrl-C
that aborts at once.
"""

from __future__ import annotations

import sys

from mimcast.errors import MimcastError, StorageError

EXIT_USAGE = 2
EXIT_IO = 1


def _one_line(e: BaseException) -> str:
    """The message on one line (YAML errors, say, span several)."""
    return " ".join(str(e).split())


def main(argv: list[str] | None = None) -> int:
    from mimcast.cli.commands import COMMANDS
    from mimcast.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
        from mimcast.training import distributed

        distributed.barrier()  # no rank tears the process group down under another (gloo aborts)
        return code
    except StorageError as e:  # a full disk, a read-only folder: not bad input
        print(f"mimcast: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_IO
    except MimcastError as e:
        print(f"mimcast: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # an I/O failure outside mimcast's own writes: no traceback either
        print(f"mimcast: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_IO
    except KeyboardInterrupt:
        print("mimcast: interrupted", file=sys.stderr)
        return 130
    finally:
        from mimcast.training import distributed

        distributed.shutdown()


__all__ = ["main"]
