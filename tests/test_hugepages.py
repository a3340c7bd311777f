"""NumPy's hugepage advice is off inside small_pages blocks, and back as it was once the last overlapping one ends."""

from __future__ import annotations

import threading

from numpy._core import multiarray

from oa_kit.hugepages import small_pages


def _advice() -> bool:
    return bool(multiarray._get_madvise_hugepage())


def test_advice_is_off_inside_and_restored_after():
    before = _advice()
    try:
        multiarray._set_madvise_hugepage(True)
        with small_pages():
            assert not _advice()
            with small_pages():
                assert not _advice()
            assert not _advice()  # the outer block is still open
        assert _advice()
    finally:
        multiarray._set_madvise_hugepage(before)


def test_overlapping_blocks_in_threads_restore_the_setting_once_all_have_ended():
    before = _advice()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first() -> None:
        with small_pages():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with small_pages():
            second_in.set()
            first_out.wait(5)
            seen["while the second runs"] = _advice()
        seen["after both"] = _advice()

    try:
        multiarray._set_madvise_hugepage(True)
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert seen == {"while the second runs": False, "after both": True}
    finally:
        multiarray._set_madvise_hugepage(before)


def test_segmentation_and_measurement_run_with_small_pages(monkeypatch):
    """Both MRI steps make the large arrays (a real-size knee: 40.6 s with the advice, 23.5 s without)."""
    from oa_kit.features import mri_knee
    from oa_kit.io.labels import SUBREGIONS
    from oa_kit.models.mri import inference
    from oa_kit.models.mri.inference import MRISegmenter
    from oa_kit.synth.mri import DEFAULT_GEOMETRY, SITE_MRI, render_knee_mri

    knee = render_knee_mri("R", dict.fromkeys(SUBREGIONS, 2.0), DEFAULT_GEOMETRY, SITE_MRI["A"], seed=0)
    seen = []
    for module, name in ((inference, "clean_labels"), (mri_knee, "measure_cartilage")):
        step = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _step=step, **k: seen.append(_advice()) or _step(*a, **k))
    before = _advice()
    try:
        multiarray._set_madvise_hugepage(True)
        seg = MRISegmenter.from_pretrained().segment(knee.image, knee.affine, "R")
        mri_knee.measure_knee(seg.labels, knee.affine, "R", {"source_file": "phantom"})
        assert seen == [False, False] and _advice()
    finally:
        multiarray._set_madvise_hugepage(before)
