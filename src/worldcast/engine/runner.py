"""Owns the tensors: builds model inputs, runs the denoising steps and the commit pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from worldcast.cache.offload import HostTier
from worldcast.cache.storage import PagedKVStorage
from worldcast.cache.view import OffloadedContext, PagedKV
from worldcast.diffusion.flow_match import FlowMatchSchedule
from worldcast.engine.session import Session
from worldcast.models.attention import DenseKV, block_causal_mask
from worldcast.models.wan.dit import NULL_ACTION, CausalWanDiT, TextContext
from worldcast.profiling.flops import dit_forward_flops
from worldcast.profiling.profiler import Span


@dataclass
class BlockResult:
    latents: torch.Tensor  # (1, C, f, h, w) clean latents of the block, model dtype
    spans: list[Span]  # one per denoising step ("step_i") and for the commit pass ("commit")
    flops: int  # analytical FLOPs of the block's DiT forwards


@dataclass(frozen=True)
class BlockInputs:
    """What every DiT pass over one block shares, worked out once per block: the pages it reads
    (device context, retrieval candidates, offloaded frames) and writes, and with guidance both
    branches' text context stacked as a batch of two, and the block's camera positions."""

    context: list[int]
    block: list[int]
    candidates: list[int]
    offloaded: OffloadedContext | None
    guided_text: TextContext | None
    camera: torch.Tensor | None  # (1, f, 2) the block's camera positions (camera-following RoPE)


class Runner:
    """Runs one block of one session, with the paged cache or, as a baseline, without one.

    Per block (Self-Forcing's inference loop)::

        x = noise
        for t, t_next in steps:          x0 = x - sigma(t) * DiT(x, t)        (reads cache)
                                          x  = (1 - sigma(t_next)) x0 + sigma(t_next) noise
                                               (or, sampler "euler": x + (sigma(t_next) - sigma(t)) DiT(x, t))
        commit:                           DiT(x0, context_noise)               (writes cache)

    ``recompute`` mode keeps no cache: every step re-runs the DiT over all earlier clean
    frames plus the block under a block-causal mask, the cost a cache saves.
    """

    def __init__(self, model: CausalWanDiT, schedule: FlowMatchSchedule,
                 storage: PagedKVStorage | None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.model = model
        self.schedule = schedule
        self.storage = storage
        self.host_tier: HostTier | None = None  # offloaded pages, once a session offloads
        self.clock = clock  # a profiler's clock synchronises the device before reading the time

    @torch.inference_mode()
    def run_block(self, session: Session) -> BlockResult:
        if session.in_prefix:
            return self._commit_prefix(session)
        device, dtype = self.model.device, self.model.dtype
        initial, step_noise = session.block_noise(self.schedule.num_steps)
        x = initial.to(device, dtype)
        inputs = self._block_inputs(session)
        spans: list[Span] = []
        x0 = x
        for index, (t, t_next) in enumerate(self.schedule.step_pairs()):
            start = self.clock()
            flow = self._guided_flow(session, x, t, inputs)
            x0 = self.schedule.x0_from_flow(flow, x, t)
            if t_next is not None:
                x = self.schedule.next_sample(x, flow, x0, step_noise[index].to(device, dtype), t, t_next)
            spans.append(self._span(f"step_{index}", start, session))
        if session.pages is not None:
            start = self.clock()
            self._forward(session, x0, self.schedule.config.context_noise, inputs)
            spans.append(self._span("commit", start, session))
        forwards = self.schedule.num_steps * (2 if self.guided else 1) + (session.pages is not None)
        return BlockResult(x0, spans, self._flops(session, forwards, inputs))

    @property
    def guided(self) -> bool:
        return self.schedule.config.guidance_scale != 1.0

    def _guided_flow(self, session: Session, x: torch.Tensor, t: float, inputs: BlockInputs | None) -> torch.Tensor:
        """The flow of one denoising step; with classifier-free guidance, pushed from the
        unconditional prediction (negative prompt, no actions) through the conditional one.
        Both run as one batch of two over the block; they read the same cache, and the commit
        pass stays conditional, so the cache holds one (conditional) past."""
        if not self.guided:
            return self._forward(session, x, t, inputs)
        cond, uncond = self._forward(session, x, t, inputs, guided=True).chunk(2)
        return uncond + self.schedule.config.guidance_scale * (cond - uncond)

    def _commit_prefix(self, session: Session) -> BlockResult:
        """A given (not generated) block: only the commit pass, writing its keys/values."""
        x0 = session.prefix_block().to(self.model.device, self.model.dtype)
        inputs = self._block_inputs(session)
        spans = []
        if session.pages is not None:
            start = self.clock()
            self._forward(session, x0, self.schedule.config.context_noise, inputs)
            spans.append(self._span("commit", start, session))
        return BlockResult(x0, spans, self._flops(session, len(spans), inputs))

    @torch.inference_mode()
    def recache(self, session: Session) -> BlockResult:
        """Rebuild the cached frames' keys/values under the session's (new) prompt: each held
        block, in order, is re-run at ``context_noise`` attending to the held frames before it —
        what the cache would hold had those latents been generated under this prompt (LongLive's
        re-cache, block-causal)."""
        spans, flops = [], 0
        tokens = self._tokens_per_frame(session)
        start = self.clock()
        for first, latents in session.held_blocks():
            f = latents.shape[2]
            session.pages.make_private(first, first + f)  # a fork keeps the old keys/values
            context = [p for frame, p in zip(session.pages.held_frames, session.pages.pages) if frame < first]
            kv = PagedKV(self.storage, context, session.pages.frames(first, first + f))
            timesteps = torch.full((1, f), float(self.schedule.config.context_noise))
            self.model(latents.to(self.model.device, self.model.dtype), timesteps, session.text, kv,
                       frame_offset=first, actions=session.frame_actions(first, f),
                       camera=self._camera(session, first, f))
            flops += dit_forward_flops(self.model.config, f * tokens, (len(context) + f) * tokens).total
        spans.append(self._span("recache", start, session))
        return BlockResult(torch.empty(0), spans, flops)

    def _span(self, name: str, start: float, session: Session) -> Span:
        return Span(name, start, self.clock(), session.request_id, session.next_block)

    def _flops(self, session: Session, forwards: int, inputs: BlockInputs | None) -> int:
        """FLOPs of ``forwards`` DiT passes over the current block: with the cache, the block's
        tokens attend to the context pages and themselves; recomputing, every pass runs over
        the whole visible past as well."""
        tokens = self._tokens_per_frame(session)
        f = session.current_block_frames
        if inputs is None:
            frames = sum(p.shape[2] for p in session.clean_latents) + f
            queries, keys = frames, frames
        else:
            offloaded = len(inputs.offloaded.pages) if inputs.offloaded is not None else 0
            retrieved = min(session.retrieval, len(inputs.candidates))
            queries, keys = f, len(inputs.context) + offloaded + retrieved + f
        return forwards * dit_forward_flops(self.model.config, queries * tokens, keys * tokens).total

    def _tokens_per_frame(self, session: Session) -> int:
        _, h, w = session.latent_shape
        _, ph, pw = self.model.config.patch_size
        return (h // ph) * (w // pw)

    def _block_inputs(self, session: Session) -> BlockInputs | None:
        """The current block's ``BlockInputs``; None without a cache (recompute mode)."""
        if session.pages is None:
            return None
        host_pages, position = session.host_split()
        offloaded = OffloadedContext(self.host_tier, host_pages, position, session.staging) if host_pages else None
        guided_text = None
        if self.guided:
            guided_text = TextContext([(torch.cat([ck, uk]), torch.cat([cv, uv]))
                                       for (ck, cv), (uk, uv) in zip(session.text.kv, session.uncond_text.kv)])
        f = session.current_block_frames
        return BlockInputs(*session.page_split(), session.retrieval_candidates(), offloaded, guided_text,
                           self._camera(session, session.frames_done, f))

    def _forward(self, session: Session, x: torch.Tensor, t: float, inputs: BlockInputs | None,
                 guided: bool = False) -> torch.Tensor:
        """One DiT pass over the current block at timestep ``t`` (every frame at the same t);
        ``guided``: a batch of two, the second under the negative prompt and without actions."""
        if inputs is None:
            return self._forward_recompute(session, x, t)
        # Earlier frames are read-only context; this block's pages are rewritten by each pass,
        # so after the commit pass they hold the clean block's keys/values.
        kv = PagedKV(self.storage, inputs.context, inputs.block, candidates=inputs.candidates,
                     top_k=session.retrieval, offloaded=inputs.offloaded)
        f, start = x.shape[2], session.frames_done
        actions, text = session.frame_actions(start, f), session.text
        if guided:
            x, text = torch.cat([x, x]), inputs.guided_text
            actions = self._with_null_actions(actions, f)
        timesteps = torch.full((x.shape[0], f), t)
        return self.model(x, timesteps, text, kv, frame_offset=start, actions=actions, camera=inputs.camera)

    def _camera(self, session: Session, start: int, count: int) -> torch.Tensor | None:
        """(1, count, 2) camera positions of latent frames start .. start + count - 1 for a model
        whose RoPE follows the camera (None otherwise): the path of the session's own actions
        from its first frame, so cached keys and new queries agree; both guidance branches share
        it (one video, one camera)."""
        if not self.model.config.action_camera:
            return None
        actions = session.actions
        if actions is None:  # no actions given: 'none' throughout
            actions = torch.zeros(start + count, self.model.config.actions_per_frame, dtype=torch.long)
        return self.model.camera_path(actions[None, :start + count])[:, start:]

    def _with_null_actions(self, actions: torch.Tensor | None, frames: int) -> torch.Tensor | None:
        """(2, f, k) action ids: the block's own (or 'none') for the conditional element,
        NULL_ACTION for the unconditional one; None for a model without actions."""
        k = self.model.config.actions_per_frame
        if not self.model.config.num_actions:
            return None
        cond = actions if actions is not None else torch.zeros(1, frames, k, dtype=torch.long)
        return torch.cat([cond, torch.full_like(cond, NULL_ACTION)])

    def _forward_recompute(self, session: Session, x: torch.Tensor, t: float) -> torch.Tensor:
        prefix = session.clean_latents
        f = x.shape[2]
        sizes = [p.shape[2] for p in prefix] + [f]
        # A single block attends to all of itself: no mask, so SDPA takes its unmasked kernel.
        mask = None
        if prefix:
            mask = block_causal_mask(sizes, self._tokens_per_frame(session), x.device, session.window, session.sink)
        frames = torch.cat([*prefix, x], dim=2)
        timesteps = torch.tensor([self.schedule.config.context_noise] * (sum(sizes) - f) + [t] * f)[None]
        flow = self.model(frames, timesteps, session.text, DenseKV(mask), frame_offset=0,
                          actions=session.frame_actions(0, sum(sizes)), camera=self._camera(session, 0, sum(sizes)))
        return flow[:, :, -f:]

