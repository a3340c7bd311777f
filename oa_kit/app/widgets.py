"""Widget parts every dashboard shares: the research-use banner, a message line, figure outputs and guarded callbacks
(an :class:`~oa_kit.errors.OAKitError` becomes its one line on the page; anything else a short generic message, with
the traceback only in the server log)."""

from __future__ import annotations

import functools
import html
import logging
import re
from collections.abc import Callable

import ipywidgets as widgets
import plotly.graph_objects as go
import plotly.io as pio

from oa_kit.errors import OAKitError

LOG = logging.getLogger("oa_kit.app")
#: The plotly renderer whose mime bundle the page's JupyterLab plotly extension draws (offline, no CDN).
PLOTLY_MIMETYPE = "plotly_mimetype"
#: Shown at the top of every page.
BANNER_TEXT = (
    "Research and teaching use only — not a diagnosis and not a medical device. "
    "Every number names the model that produced it and the data it was trained on."
)


class PagePreview:
    """Static HTML of a page's first results, which the page template (``dashboards/jupyter``) shows as soon as the
    page arrives, before Voila's JavaScript has drawn the widgets (3-4 s on 2 cores). Marked by the output metadata
    ``oa_kit_preview``; where the notebook output itself is drawn, the ``oa-preview-source`` wrapper hides it."""

    def __init__(self, body: str) -> None:
        self.body = body

    def _repr_mimebundle_(self, include=None, exclude=None) -> tuple[dict, dict]:
        """The HTML in its hidden wrapper, flagged for the template unless there is nothing to preview."""
        wrapped = {"text/html": f'<div class="oa-preview-source">{self.body}</div>'}
        return wrapped, {"oa_kit_preview": True} if self.body else {}


def preview_classes(markup: str) -> str:
    """``markup`` with every ``oa-*`` CSS class renamed ``oa-preview-*``, so a static copy of widget HTML is never
    mistaken for the live widgets (by styles, tests or the benchmark)."""

    def rename(match: re.Match) -> str:
        names = (f"oa-preview-{n[3:]}" if n.startswith("oa-") else n for n in match.group(1).split())
        return f'class="{" ".join(names)}"'

    return re.sub(r'class="([^"]*)"', rename, markup)


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
    """Replace ``output``'s content with ``figure`` (a plain go.Figure: no FigureWidget, REFERENCE §6.2).

    The figure's plotly mime bundle is set as the output's content, not ``display``-ed inside ``with output``: that
    capture follows the kernel's current message, so it is wrong from a page's background worker thread; setting
    the ``outputs`` trait is safe from any thread."""
    if figure.layout.width is not None and figure.layout.width > 900:
        figure = go.Figure(figure).update_layout(width=None, autosize=True)  # follow the page's width
    bundle = pio.renderers[PLOTLY_MIMETYPE].to_mimebundle(figure.to_dict())
    output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)


def clear_figure(output: widgets.Output) -> None:
    """Empty a figure output by its ``outputs`` trait (thread-safe; ``clear_output`` goes through the kernel's
    current message, which Voila's renderer replays as a later clearing of the figures set since)."""
    output.outputs = ()


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
            except Exception as error:  # noqa: BLE001 - the page must keep working; details go to the server log
                report_error(message, error)
            return None

        return run

    return wrap


def report_error(message: MessageLine, error: Exception) -> None:
    """Show ``error`` on the page: an :class:`OAKitError` as its first line, anything else as a short generic line
    (the traceback goes to the server log)."""
    if isinstance(error, OAKitError):
        message.error(str(error).splitlines()[0])
        return
    LOG.error("dashboard callback failed", exc_info=error)
    message.error(f"unexpected error ({type(error).__name__}); the page still works, try other input")


def heading(text: str, level: int = 3) -> widgets.HTML:
    """A section heading."""
    return widgets.HTML(f"<h{level}>{html.escape(text)}</h{level}>")


def table_html(frame, float_format: str = "{:.3f}", classes: str = "oa-table") -> str:
    """A DataFrame as a compact HTML table."""
    return frame.to_html(index=False, classes=classes, border=0, float_format=float_format.format, na_rep="—")
