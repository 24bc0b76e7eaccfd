"""The daphne app (Channels' `runserver` on daphne) without Twisted in every process."""

from django.apps import AppConfig


class DaphneRunserverConfig(AppConfig):
    """`daphne` as an installed app, for its `runserver` command only.

    daphne's own AppConfig module imports `daphne.server`, which imports Twisted and installs
    its asyncio reactor, in every process that sets Django up: ~0.2 s of CPU in each, though
    only `runserver` (and the `daphne` command) serve with it; `manage.py serve` is uvicorn.
    `runserver`'s module imports `daphne.server` itself, still before anything else imports
    Twisted's reactor. daphne's check that it is listed before django.contrib.staticfiles
    (`daphne.checks`) is left out: it knows only its own AppConfig; settings keep the order.
    """

    name = "daphne"
    label = "daphne"
    verbose_name = "Daphne"
