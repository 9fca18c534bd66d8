"""`python -m yuqing` and the `yuqing` console script (pyproject's `[project.scripts]`): the CLI, imported when run.

Why the CLI is imported inside `main`: a spawned pool worker (`flow.pool.start_method`: where workers are not forked)
re-runs the script that started its parent as `__mp_main__`, and the script imports the module it names; had it named
`yuqing.cli`, every such worker would import typer, rich and every command's package for nothing."""

from __future__ import annotations


def main() -> None:
    from yuqing.cli import main as run_cli

    run_cli()


if __name__ == "__main__":
    main()
