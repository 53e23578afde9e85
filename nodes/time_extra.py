"""Time nodes beyond time.py: TimeClip, Retime, FrameBlend, AppendClip, as Nuke's nodes of those names.

Each maps an output frame to the input frames it shows (declared in ``needs``, so hashing,
caching and evaluation agree) and reports the frame range it produces (``frame_range``). The
frame maths are plain functions (``timeclip_source``, ``retime_source``, ``frameblend_frames``,
``appendclip_source``) a test can call without a graph. Pixels are blended in float32 for half
images. A black frame is the input's channels and format with an empty data window.
"""

from __future__ import annotations

import math
from typing import Literal

import pydantic
import torch
from pydantic import Field

from nodegraph import animation
from nodegraph.errors import KnobError, NodeGraphError
from nodegraph.evaluator import Context
from nodegraph.expression import Expression
from nodegraph.image import Box, Image
from nodegraph.node import Input, Knobs, Node

from ._common import ChannelsKnob, MixKnob, mask_weight, select_channels

Edge = Literal["hold", "loop", "bounce", "black"]


def black_like(img: Image) -> Image:
    """``img``'s channels, format and metadata with an empty data window (a black frame)."""
    return img.replace(pixels=img.pixels[:, :0, :0], bbox=Box(0, 0, 0, 0))


def wrap(t: float, first: float, last: float, mode: str) -> float | None:
    """Frame ``t`` brought into ``[first, last]`` by ``mode``: hold (clamp), loop (repeat the range),
    bounce (play it back and forth), black (None outside), continue (unchanged)."""
    if first <= t <= last or mode == "continue":
        return t
    if mode == "black":
        return None
    if mode == "hold" or last <= first:
        return min(max(t, first), last)
    n = last - first
    if mode == "loop":  # whole frames: a range of n + 1 frames repeats every n + 1 frames
        return first + (t - first) % (n + 1)
    p = (t - first) % (2 * n)  # bounce: first..last..first, period 2n
    return first + (p if p <= n else 2 * n - p)


def blend(images: list[tuple[Image, float]]) -> Image:
    """The weighted sum of images over the union of their data windows, in the first image's
    format and channel order (channels only later images have are appended, 0 where absent)."""
    ref = images[0][0]
    chans = list(ref.channels)
    for img, _ in images[1:]:
        chans += [c for c in img.channels if c not in chans]
    box = Box(0, 0, 0, 0)
    for img, _ in images:
        box = box.union(img.bbox)
    out = torch.zeros((len(chans), box.height, box.width), device=ref.device, dtype=torch.float32)
    for img, w in images:
        img = img.to(ref.device).crop_to(box)
        for i, c in enumerate(chans):
            if c in img.channels:
                out[i] += img.channel(c).float() * w
    return Image(out.to(ref.dtype), tuple(chans), box, ref.format, dict(ref.metadata))


# --- TimeClip -----------------------------------------------------------------------------------

def timeclip_source(f: int, first: int, last: int, before: str, after: str, frame_mode: str,
                    start: float | None, reverse: bool) -> float | None:
    """TimeClip's input frame for output frame ``f`` (None: black). ``start`` is the output frame
    the clip's ``first`` frame is shown at ("start at"), or the input frame an expression gave."""
    if frame_mode == "start at":
        t = f - (first if start is None else start) + first
    else:
        t = f if start is None else start
    mode = before if t < first else after
    t2 = wrap(t, first, last, mode)
    if t2 is None:
        return None
    return first + last - t2 if reverse else t2


def fade_gain(t: float, first: int, last: int, fade_in: float, fade_out: float) -> float:
    """Fade from black over the first ``fade_in`` frames of the range and to black over the last
    ``fade_out``: the k-th frame from the edge (k = 1, 2..) has k / (fade + 1)."""
    g = 1.0
    if fade_in > 0:
        g *= min(1.0, (t - first + 1) / (fade_in + 1))
    if fade_out > 0:
        g *= min(1.0, (last - t + 1) / (fade_out + 1))
    return max(g, 0.0)


class TimeClip(Node):
    """Nuke's TimeClip: keeps the input frames ``first``..``last`` (a trim), places them in time and
    says what is shown outside them.

    Output frame f shows input frame t: with ``frame_mode`` 'start at' the clip's first frame is
    shown at output frame ``frame`` (t = f - frame + first; an empty ``frame`` means first, no
    shift); with 'expression' ``frame`` is the input frame itself, as a number or an expression in
    the engine's language (``frame*2``, ``frame+10``); empty means t = f. Then t outside
    first..last follows ``before`` / ``after``: hold (the end frame), loop (the range repeats),
    bounce (it plays back and forth), black. ``reverse`` plays the range backwards (t ->
    first + last - t). ``fadeIn`` / ``fadeOut`` ramp the pixels from and to black over that many
    frames at each end of the range: k / (fade + 1) on the k-th frame (nodegraph's choice; the
    docs give no formula). The frame range is the clip's place in output time.

    nodegraph's choices where the docs are silent: ``first``/``last`` are in input frames;
    ``origfirst``, ``origlast`` and ``origset`` (the input's range as Nuke's Dope Sheet recorded it)
    are kept but change nothing; fades default to 0 (the reference table says 5, which would fade
    every clip Nuke writes without fade knobs); an expression reading other knobs is evaluated per
    output frame, its result picks the input frame (which enters the hash through the input's).
    """

    category = "Time"
    inputs = (Input("input", doc="The clip to trim, slip and place."),)

    class Knobs(Knobs):
        first: int = 1
        """First input frame of the clip."""
        last: int = 100
        """Last input frame of the clip."""
        before: Edge = "hold"
        """What frames before the clip show: hold, loop, bounce or black."""
        after: Edge = "hold"
        """What frames after the clip show: hold, loop, bounce or black."""
        frame_mode: Literal["expression", "start at"] = "expression"
        """How ``frame`` is read: the input frame (expression) or where the clip starts (start at)."""
        frame: str = ""
        """A number or an expression (see frame_mode); empty: no change."""
        reverse: bool = False
        """Play the clip backwards within first..last."""
        fadeIn: float = Field(0.0, ge=0)
        """Frames to fade in from black at the start of the clip."""
        fadeOut: float = Field(0.0, ge=0)
        """Frames to fade out to black at the end of the clip."""
        origfirst: int = 1
        """The input's first frame when the node was set up (Nuke's Dope Sheet); no effect."""
        origlast: int = 100
        """The input's last frame when the node was set up (Nuke's Dope Sheet); no effect."""
        origset: bool = False
        """Whether origfirst/origlast were recorded; no effect."""
        time: str = ""
        """A knob Nuke writes empty on every TimeClip; kept, no effect."""

    def _start(self, frame: int) -> float | None:
        text = self.knobs.frame.strip().strip("{}").strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            pass
        try:
            anim = animation.Animated(Expression(text), animation.Shape(frozenset({1}), float),
                                      owner_name=self.name, knob="frame")
            return float(anim.resolve(frame, self._lookup))
        except NodeGraphError as err:
            raise KnobError(f"not a frame number or an expression: {err.message}", node=self.path,
                            knob="frame") from None

    def source(self, frame: int) -> float | None:
        k = self.knobs
        return timeclip_source(frame, k.first, k.last, k.before, k.after, k.frame_mode,
                               self._start(frame), k.reverse)

    def needs(self, ctx: Context):
        if "input" not in ctx.connected:
            return []
        try:
            t = self.source(ctx.frame)
        except KnobError:  # a bad expression: compute reports it, naming the knob
            t = None
        return [("input", self.knobs.first if t is None else round(t))]

    def hash_extra(self, ctx: Context) -> bytes:
        # black and the fade gain are not in the inputs' hashes: frames sharing an input frame differ
        try:
            t = self.source(ctx.frame)
        except KnobError:
            return b"?"
        if t is None:
            return b"black"
        k = self.knobs
        return repr(fade_gain(t if not k.reverse else k.first + k.last - t, k.first, k.last, k.fadeIn,
                              k.fadeOut)).encode()

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        t = self.source(ctx.frame)
        img = ctx.input("input", k.first if t is None else round(t))
        if t is None:
            return black_like(img)
        g = fade_gain(t if not k.reverse else k.first + k.last - t, k.first, k.last, k.fadeIn, k.fadeOut)
        if g >= 1.0:
            return img
        return img.replace(pixels=(img.pixels.float() * g).to(img.dtype))

    def frame_range(self, ranges):
        k = self.knobs
        if k.frame_mode == "start at":
            start = self._start(k.first)
            s = k.first if start is None else start
            return (int(math.floor(s)), int(math.floor(s)) + k.last - k.first)
        return (min(k.first, k.last), max(k.first, k.last))

    def check(self) -> list[str]:
        k = self.knobs
        return [f"knob 'last': {k.last} is before first {k.first}"] if k.last < k.first else []


# --- Retime -------------------------------------------------------------------------------------

def retime_source(f: float, in_first: float, in_last: float, out_first: float, out_last: float,
                  speed: float, locked: bool, reverse: bool, before: str, after: str) -> float | None:
    """Retime's input frame (fractional) for output frame ``f``, None for black. ``locked``: both
    output ends are set, the speed makes the input range fill the output range; otherwise the output
    range is out_first .. out_first + (in_last - in_first) / speed."""
    o1 = out_first
    if locked and out_last != out_first:
        rate = (in_last - in_first) / (out_last - out_first)
        o2 = out_last
    else:
        rate = speed
        o2 = o1 + (in_last - in_first) / speed if speed else o1
    lo, hi = min(o1, o2), max(o1, o2)
    g = wrap(f, lo, hi, before if f < lo else after)
    if g is None:
        return None
    offset = (g - o1) * rate
    return in_last - offset if reverse else in_first + offset


def _retime_knobs() -> type[Knobs]:
    """Retime's knobs carry Nuke's dotted names (``input.first``), which are not Python names."""
    def f(default, doc, **kw):
        return (type(default), Field(default, description=doc, **kw))

    fields = {
        "input.first": f(1, "First input frame retimed."),
        "input.first_lock": f(False, "Keep input.first when the input changes (Nuke's interface); no effect."),
        "input.last": f(100, "Last input frame retimed."),
        "input.last_lock": f(False, "Keep input.last when the input changes (Nuke's interface); no effect."),
        "output.first": f(1, "Output frame showing input.first."),
        "output.first_lock": f(False, "With output.last_lock: the speed makes the input range fill output.first..last."),
        "output.last": f(100, "Last output frame (used when both output locks are on)."),
        "output.last_lock": f(False, "With output.first_lock: the speed makes the input range fill output.first..last."),
        "speed": (float, Field(1.0, gt=0, description="Input frames per output frame (2: twice as fast).")),
        "reverse": f(False, "Play the input range backwards."),
        "before": (Literal["hold", "loop", "bounce", "black", "continue"],
                   Field("hold", description="Frames before the output range: hold, loop, bounce, black or continue.")),
        "after": (Literal["hold", "loop", "bounce", "black", "continue"],
                  Field("hold", description="Frames after the output range: hold, loop, bounce, black or continue.")),
        "filter": (Literal["none", "box"], Field(
            "box", description="Between input frames: none (the nearest frame) or box (blend the two neighbours).")),
    }
    return pydantic.create_model("RetimeKnobs", __base__=Knobs, **fields)


class Retime(Node):
    """Nuke's Retime: plays input frames ``input.first``..``input.last`` from output frame
    ``output.first`` at ``speed`` input frames per output frame (or, with both output locks on,
    stretched to fill ``output.first``..``output.last``): output frame f shows input frame
    t = input.first + (f - output.first) * speed (input.last - ... with ``reverse``). Frames outside
    the output range follow ``before``/``after`` (hold, loop, bounce, black; continue keeps
    extrapolating). A fractional t with ``filter`` box blends the two neighbouring frames,
    (1 - w) * in(floor t) + w * in(floor t + 1) with w = t - floor t; with none it shows the nearest
    frame (halves round up).

    nodegraph's choices where the docs are silent: input.last and output.last default to 100 (Nuke
    takes them from the input clip); Nuke's shutter (motion-blur over several input frames) is not
    offered; the frame range is output.first..the last output frame, rounded outwards.
    """

    category = "Time"
    inputs = (Input("input", doc="The clip to retime."),)
    Knobs = _retime_knobs()

    def _k(self, name: str):
        return getattr(self.knobs, name)

    def source(self, frame: float) -> float | None:
        k = self._k
        return retime_source(frame, k("input.first"), k("input.last"), k("output.first"), k("output.last"),
                             k("speed"), k("output.first_lock") and k("output.last_lock"), k("reverse"),
                             k("before"), k("after"))

    def _frames(self, frame: int) -> list[tuple[int, float]] | None:
        t = self.source(frame)
        if t is None:
            return None
        if self._k("filter") == "none":
            return [(math.floor(t + 0.5), 1.0)]
        lo = math.floor(t)
        w = t - lo
        if w < 1e-9:
            return [(lo, 1.0)]
        return [(lo, 1.0 - w), (lo + 1, w)]

    def needs(self, ctx: Context):
        if "input" not in ctx.connected:
            return []
        frames = self._frames(ctx.frame)
        return [("input", self._k("input.first"))] if frames is None else [("input", f) for f, _ in frames]

    def hash_extra(self, ctx: Context) -> bytes:
        frames = self._frames(ctx.frame)  # the weights (and black), beyond the inputs' hashes
        return b"black" if frames is None else repr([w for _, w in frames]).encode()

    def compute(self, ctx: Context) -> Image:
        frames = self._frames(ctx.frame)
        if frames is None:
            return black_like(ctx.input("input", self._k("input.first")))
        if len(frames) == 1:
            return ctx.input("input", frames[0][0])
        return blend([(ctx.input("input", f), w) for f, w in frames])

    def frame_range(self, ranges):
        k = self._k
        o1 = k("output.first")
        if k("output.first_lock") and k("output.last_lock"):
            o2 = k("output.last")
        else:
            o2 = o1 + (k("input.last") - k("input.first")) / k("speed")
        return (math.floor(min(o1, o2)), math.ceil(max(o1, o2)))


# --- FrameBlend ---------------------------------------------------------------------------------

def frameblend_frames(frame: int, numframes: int, userange: bool, startframe: int, endframe: int) -> list[int]:
    """The input frames FrameBlend averages at output ``frame``: startframe..endframe with
    ``userange``, else ``numframes`` frames centred on ``frame`` (the extra one of an even count
    before it)."""
    if userange:
        a, b = min(startframe, endframe), max(startframe, endframe)
        return list(range(a, b + 1))
    n = max(1, numframes)
    a = frame - n // 2
    return list(range(a, a + n))


class FrameBlend(Node):
    """Nuke's FrameBlend: the average of several input frames, on ``channels``:
    out = in + (mean(in(t) for t in T) - in) * mix * mask, T = ``startframe``..``endframe`` with
    ``userange`` on, else ``numframes`` frames centred on the current frame (frame - n//2 ..
    frame - n//2 + n - 1). Channels outside ``channels`` come from the current frame.

    nodegraph's choices where the docs are silent: the window is centred (the docs do not say where
    it sits); frames outside the input's range are whatever the input gives there (a Read holds its
    ends); the data window is the union of the averaged frames'; Nuke's matte-weighted blend
    (``blendmask``) is not offered.
    """

    category = "Time"
    inputs = (Input("input", doc="The clip to average."), Input("mask", required=False, doc="Where to blend."))

    class Knobs(Knobs):
        channels: ChannelsKnob = "all"
        """Channels averaged; the others come from the current frame."""
        numframes: int = Field(5, ge=1)
        """Number of frames averaged around the current one (when userange is off)."""
        userange: bool = False
        """Average the fixed range startframe..endframe instead."""
        startframe: int = -1
        """First frame of the fixed range."""
        endframe: int = -1
        """Last frame of the fixed range."""
        maskChannelInput: str = "rgba.alpha"
        """Channel of the mask input limiting the effect."""
        invert_mask: bool = False
        """Use one minus the mask."""
        mix: MixKnob = 1.0
        """Dissolve between the current frame (0) and the average (1)."""

    def frames(self, frame: int) -> list[int]:
        k = self.knobs
        return frameblend_frames(frame, k.numframes, k.userange, k.startframe, k.endframe)

    def needs(self, ctx: Context):
        if "input" not in ctx.connected:
            return []
        wanted = dict.fromkeys([ctx.frame] + self.frames(ctx.frame))
        out = [("input", f) for f in wanted]
        if "mask" in ctx.connected:
            out.append(("mask", ctx.frame))
        return out

    def compute(self, ctx: Context) -> Image:
        k = self.knobs
        cur = ctx.input("input")
        frames = self.frames(ctx.frame)
        avg = blend([(ctx.input("input", f), 1.0 / len(frames)) for f in frames])
        names = [c for c in select_channels(k.channels, avg, self.name) if c in avg.channels]
        box = cur.bbox.union(avg.bbox)
        cur, avg = cur.crop_to(box), avg.crop_to(box)
        w = mask_weight(ctx, k, box, device=cur.device, dtype=torch.float32)
        out_names = list(cur.channels) + [c for c in names if c not in cur.channels]
        planes = []
        for c in out_names:
            base = cur.channel(c).float() if c in cur.channels else torch.zeros((box.height, box.width),
                                                                                 device=cur.device)
            planes.append(base + (avg.channel(c).float() - base) * w if c in names else base)
        pixels = torch.stack(planes) if planes else cur.pixels.float()
        return Image(pixels.to(cur.dtype), tuple(out_names), box, cur.format, dict(cur.metadata))


# --- AppendClip ---------------------------------------------------------------------------------

#: Inputs AppendClip offers ("0".."31"); Nuke allows any number.
APPEND_INPUTS = 32
#: The last frame of a clip without a frame range (a generator): it plays for ever.
UNBOUNDED = 2**40


def appendclip_source(f: int, first_frame: int, lengths: list[int], dissolve: int) -> list[tuple[int, int, float]]:
    """AppendClip's sources for output frame ``f``: (clip index, frame offset into that clip,
    weight) pairs. Clip i starts where clip i-1 ends, minus ``dissolve`` frames of overlap during
    which the later clip's weight rises k / (dissolve + 1). Before the first clip: its first frame;
    after the last: its last frame."""
    if not lengths:
        return []
    starts, s = [], first_frame
    for n in lengths:
        starts.append(s)
        s += n - dissolve
    end = starts[-1] + lengths[-1] - 1
    f = min(max(f, first_frame), end)
    live = [i for i, (a, n) in enumerate(zip(starts, lengths)) if a <= f < a + n]
    if len(live) == 1:
        i = live[0]
        return [(i, f - starts[i], 1.0)]
    i, j = live[0], live[-1]
    w = (f - starts[j] + 1) / (dissolve + 1)
    return [(i, f - starts[i], 1.0 - w), (j, f - starts[j], w)]


class AppendClip(Node):
    """Nuke's AppendClip: plays its inputs one after another from ``firstFrame``: each connected
    input's frame range (in input order) follows the previous one; an input without a range (a generator) never ends, so the inputs after
    it are not reached and the sequence has no range. ``dissolve`` frames of each join overlap, the later clip's weight
    rising k / (dissolve + 1) on the k-th overlapping frame (a cross dissolve); ``fadeIn`` and
    ``fadeOut`` ramp from and to black over the first and last frames of the whole sequence
    (k / (fade + 1)). Before the sequence it holds its first frame, after it its last.

    nodegraph's choices where the docs are silent: ``dissolve`` is kept below every clip's length;
    the output's format and channel order are the earlier clip's during a dissolve; Nuke's
    ``meta_from_first`` / ``time`` knobs are not offered.
    """

    category = "Time"
    inputs = tuple(Input(str(i), required=i == 0, doc=f"Clip {i} of the sequence.") for i in range(APPEND_INPUTS))

    class Knobs(Knobs):
        firstFrame: int = 1
        """Output frame the first clip starts at."""
        fadeIn: float = Field(0.0, ge=0)
        """Frames to fade in from black at the start of the sequence."""
        fadeOut: float = Field(0.0, ge=0)
        """Frames to fade out to black at the end of the sequence."""
        dissolve: int = Field(0, ge=0)
        """Frames of overlap (cross dissolve) between consecutive clips."""

    def _clips(self, ranges: dict[str, tuple[int, int] | None]) -> list[tuple[str, int, int]]:
        out = []
        for spec in self.inputs:
            if spec.name in ranges:
                r = ranges[spec.name]
                if r is None:  # no range (a generator): it never ends, later clips are not reached
                    out.append((spec.name, 1, UNBOUNDED))
                    break
                out.append((spec.name, r[0], r[1]))
        return out

    def _plan(self, ranges) -> tuple[list[tuple[str, int, int]], list[int], int]:
        clips = self._clips(ranges)
        lengths = [b - a + 1 for _, a, b in clips]
        d = min([self.knobs.dissolve] + [n - 1 for n in lengths])
        return clips, lengths, d

    def sources(self, ctx: Context) -> tuple[list[tuple[str, int, float]], float]:
        ranges = {n: ctx.input_range(n) for n in ctx.connected if n.isdigit()}
        clips, lengths, d = self._plan(ranges)
        k = self.knobs
        picks = appendclip_source(ctx.frame, k.firstFrame, lengths, d)
        total = sum(lengths) - d * (len(lengths) - 1)
        g = fade_gain(min(max(ctx.frame, k.firstFrame), k.firstFrame + total - 1), k.firstFrame,
                      k.firstFrame + total - 1, k.fadeIn, k.fadeOut)
        return [(clips[i][0], clips[i][1] + off, w) for i, off, w in picks], g

    def needs(self, ctx: Context):
        picks, _ = self.sources(ctx)
        return [(name, f) for name, f, _ in picks]

    def hash_extra(self, ctx: Context) -> bytes:
        picks, g = self.sources(ctx)
        return repr(([w for _, _, w in picks], g)).encode()

    def compute(self, ctx: Context) -> Image:
        picks, g = self.sources(ctx)
        if len(picks) == 1 and g >= 1.0:
            return ctx.input(picks[0][0], picks[0][1])
        return blend([(ctx.input(name, f), w * g) for name, f, w in picks])

    def frame_range(self, ranges):
        clips, lengths, d = self._plan(ranges)
        if not clips:
            return None
        if clips[-1][2] == UNBOUNDED:
            return None
        total = sum(lengths) - d * (len(lengths) - 1)
        return (self.knobs.firstFrame, self.knobs.firstFrame + total - 1)


__all__ = ["AppendClip", "FrameBlend", "Retime", "TimeClip", "appendclip_source", "blend", "frameblend_frames",
           "retime_source", "timeclip_source", "wrap"]
