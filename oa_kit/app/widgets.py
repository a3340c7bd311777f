"""Widget parts every dashboard shares: the research-use banner, a message line, figure outputs and guarded callbacks
(an :class:`~oa_kit.errors.OAKitError` becomes its one line on the page; anything else a short generic message, with
the traceback only in the server log)."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable

import ipywidgets as widgets
import plotly.graph_objects as go
from IPython.display import display

from oa_kit.errors import OAKitError

LOG = logging.getLogger("oa_kit.app")
#: Shown at the top of every page.
BANNER_TEXT = (
    "Research and teaching use only — not a diagnosis and not a medical device. "
    "Every number names the model that produced it and the data it was trained on."
)


def banner() -> widgets.HTML:
    """The research-use banner (role ``alert`` so screen readers announce it)."""
    return widgets.HTML(
        f'<div class="oa-banner" role="alert" style="background:#fff3cd;border:1px solid #c9a227;'
        f'padding:6px 10px;font-weight:600">{html.escape(BANNER_TEXT)}</div>'
    )


class MessageLine(widgets.HTML):
    """One line for errors and notes (``.oa-message``; ``.oa-error`` while it shows an error)."""

    def error(self, text: str) -> None:
        """Show ``text`` as an error."""
        self.value = (
            f'<div class="oa-message oa-error" role="alert" style="color:#a4000f;font-weight:600">'
            f"⚠ {html.escape(text)}</div>"
        )

    def note(self, text: str) -> None:
        """Show ``text`` as a neutral note."""
        self.value = f'<div class="oa-message oa-note" style="color:#333">{html.escape(text)}</div>'

    def clear(self) -> None:
        """Remove the message."""
        self.value = ""


def show_figure(output: widgets.Output, figure: go.Figure) -> None:
    """Replace ``output``'s content with ``figure`` (a plain go.Figure: no FigureWidget, REFERENCE §6.2)."""
    if figure.layout.width is not None and figure.layout.width > 900:
        figure = go.Figure(figure).update_layout(width=None, autosize=True)  # follow the page's width
    output.clear_output(wait=True)
    with output:
        display(figure)


def show_html(output: widgets.HTML, text: str) -> None:
    """Set an HTML widget (kept for symmetry with :func:`show_figure`)."""
    output.value = text


def guarded(message: MessageLine) -> Callable:
    """Decorator for callbacks: clears ``message``, runs the callback, shows what went wrong in one line."""

    def wrap(callback: Callable) -> Callable:
        @functools.wraps(callback)
        def run(*args, **kwargs):
            message.clear()
            try:
                return callback(*args, **kwargs)
            except OAKitError as error:
                message.error(str(error).splitlines()[0])
            except Exception as error:  # noqa: BLE001 - the page must keep working; details go to the server log
                LOG.exception("dashboard callback failed")
                message.error(f"unexpected error ({type(error).__name__}); the page still works, try other input")
            return None

        return run

    return wrap


def heading(text: str, level: int = 3) -> widgets.HTML:
    """A section heading."""
    return widgets.HTML(f"<h{level}>{html.escape(text)}</h{level}>")


def table_html(frame, float_format: str = "{:.3f}", classes: str = "oa-table") -> str:
    """A DataFrame as a compact HTML table."""
    return frame.to_html(index=False, classes=classes, border=0, float_format=float_format.format, na_rep="—")
