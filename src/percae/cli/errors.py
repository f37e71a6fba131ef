"""How a command ends: the library's refusals, the system's refusals to read or write a file and
click's usage errors as one line and exit 1; Ctrl-C and SIGTERM as one line and exit 130 or 143
(other exceptions are bugs: they keep their traceback)."""

from __future__ import annotations

import signal
import sys

import click

from ..errors import Refusal


class Group(click.Group):
    """Turns the library's own errors, the system's refusals to read or write a file, and
    click's usage errors into one clear line and exit status 1 (other exceptions are bugs:
    they keep their traceback)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        terminated = []

        def on_sigterm(signum, frame):
            terminated.append(signum)
            # unwound as Ctrl-C is: atomic writes leave nothing half-written
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as e:  # click >= 8.2
            click.echo(e.ctx.get_help())  # `percae` or `percae data` alone: the help, as asked
            sys.exit(0)
        except click.UsageError as e:
            hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            click.echo(f"Error: {e.format_message()}{hint}", err=True)
            sys.exit(1)
        except click.ClickException as e:
            click.echo(f"Error: {e.format_message()}", err=True)
            sys.exit(1)
        except (click.Abort, KeyboardInterrupt):
            what, status = ("terminated (SIGTERM)", 143) if terminated else ("interrupted", 130)
            click.echo(
                f"Error: {what}; rerun the same command to resume (finished work is kept)", err=True
            )
            sys.exit(status)
        finally:
            signal.signal(signal.SIGTERM, previous)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            # --help, Ctrl-C and click's own errors: click's way (and no torch import for --help)
            raise
        except Exception as e:
            if _raised_while_interrupted(e):
                # a library's clean-up that failed because it was cut off: the interrupt is
                # what happened, and it ends as one
                raise KeyboardInterrupt from e
            if isinstance(e, OSError):
                where = f": {e.filename}" if e.filename else ""
                raise click.ClickException(f"{e.strerror or e}{where}") from None
            if isinstance(e, (Refusal, FileExistsError)):
                # (a file name that is not UTF-8 is shown with its odd bytes replaced)
                line = " ".join(str(e).split()).encode("utf-8", "replace").decode()
                raise click.ClickException(line) from None
            raise


def _raised_while_interrupted(error: BaseException) -> bool:
    """Whether `error` was raised while a Ctrl-C or SIGTERM (a KeyboardInterrupt) unwound."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__context__
    return False
