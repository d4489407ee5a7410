from __future__ import annotations

from media.segmenter import Kind, Segmenter, SegmenterConfig


def _feed(segmenter: Segmenter, pattern: list[tuple[float, int]]) -> list[tuple[Kind, int]]:
    """pattern: (probability, duration ms) runs; returns (kind, at_ms) of every event."""
    out = []
    for probability, duration in pattern:
        for _ in range(duration // 20):
            out += [(e.kind, e.at_ms) for e in segmenter.push(probability)]
    return out


def test_an_utterance_starts_pauses_and_ends() -> None:
    events = _feed(Segmenter(), [(0.0, 200), (0.9, 1000), (0.05, 600)])
    assert events == [
        (Kind.SPEECH_START, 200),
        (Kind.PAUSE, 1200),
        (Kind.SPEECH_END, 1200),
    ]


def test_a_click_shorter_than_min_speech_is_ignored() -> None:
    assert _feed(Segmenter(), [(0.0, 100), (0.95, 40), (0.0, 500)]) == []


def test_a_mid_sentence_pause_resumes_without_ending() -> None:
    events = _feed(Segmenter(), [(0.9, 500), (0.1, 300), (0.9, 500), (0.0, 1000)])
    kinds = [kind for kind, _ in events]
    assert kinds == [Kind.SPEECH_START, Kind.PAUSE, Kind.RESUME, Kind.PAUSE, Kind.SPEECH_END]
    assert events[2] == (Kind.RESUME, 800)


def test_probabilities_between_thresholds_hold_the_state() -> None:
    cfg = SegmenterConfig()
    middle = (cfg.start_threshold + cfg.end_threshold) / 2
    assert _feed(Segmenter(cfg), [(middle, 1000)]) == []
    events = _feed(Segmenter(cfg), [(0.9, 200), (middle, 2000)])
    assert [kind for kind, _ in events] == [Kind.SPEECH_START]


def test_hangover_grows_for_speakers_who_pause_and_stays_bounded() -> None:
    cfg = SegmenterConfig()
    segmenter = Segmenter(cfg)
    assert segmenter.hangover_ms == cfg.hangover_ms
    _feed(segmenter, [(0.9, 300), (0.1, 360), (0.9, 300)])
    assert segmenter.hangover_ms == 540
    _feed(segmenter, [(0.1, 520), (0.9, 300)])
    assert segmenter.hangover_ms == 780
    _feed(segmenter, [(0.1, 760), (0.9, 300)])
    assert segmenter.hangover_ms == cfg.max_hangover_ms
    # The end of the turn now waits for the longer hangover.
    brisk = _feed(Segmenter(cfg), [(0.9, 300), (0.0, 500)])
    patient = _feed(segmenter, [(0.0, 500)])
    assert Kind.SPEECH_END in [k for k, _ in brisk]
    assert Kind.SPEECH_END not in [k for k, _ in patient]


def test_brisk_speakers_get_the_minimum_hangover() -> None:
    cfg = SegmenterConfig()
    segmenter = Segmenter(cfg)
    _feed(segmenter, [(0.9, 300), (0.1, 60), (0.9, 300)])
    assert segmenter.hangover_ms == cfg.min_hangover_ms
