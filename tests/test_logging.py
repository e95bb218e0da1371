"""The library logs its warnings; the command line shows them one line each on stderr."""

from __future__ import annotations

import logging

import pytest

from embedx.terminal import _StderrWarnings, log_warnings_to_stderr


@pytest.fixture
def cli_logging():
    logger = logging.getLogger("embedx")
    before, level = list(logger.handlers), logger.level
    log_warnings_to_stderr()
    log_warnings_to_stderr()  # twice: still one handler
    try:
        yield logger
    finally:
        logger.handlers[:] = before
        logger.setLevel(level)


def test_a_warning_is_one_escaped_line_and_info_is_not_shown(cli_logging, capsys):
    assert sum(isinstance(h, _StderrWarnings) for h in cli_logging.handlers) == 1
    logging.getLogger("embedx.store.upgrade").warning("moved %s aside\nsecond line \x1b[31m", "f.h5")
    logging.getLogger("embedx.store.upgrade").info("not shown")
    err = capsys.readouterr().err
    assert err == "embedx: moved f.h5 aside\\nsecond line \\x1b[31m\n"

