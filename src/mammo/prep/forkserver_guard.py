"""Imported only by prepare's forkserver (a preload module): the server dies with the process that started it.

Nothing else imports this module; its import is its job (see `mammo.prep.pool`).
"""

import signal

from mammo.prep.pool import die_with_parent

signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C for the whole run
die_with_parent()
