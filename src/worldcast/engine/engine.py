"""Engine: orchestration only. Requests in, one ``BlockOutput`` per block out."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import torch

from worldcast.cache.block_pool import PagePool, PageTable
from worldcast.cache.offload import HostTier, plan_offload
from worldcast.cache.spec import KVCacheSpec
from worldcast.cache.storage import concat_rows, make_storage, select_rows
from worldcast.config import EngineConfig
from worldcast.diffusion.flow_match import FlowMatchSchedule
from worldcast.engine.request import BlockOutput, GenerationRequest, GenerationResult
from worldcast.engine.runner import Runner
from worldcast.engine.scheduler import Scheduler
from worldcast.engine.session import Session
from worldcast.engine.snapshot import check_compatible, read_snapshot, write_snapshot
from worldcast.models.wan.dit import CausalWanDiT, TextContext
from worldcast.profiling.memory import device_total_memory
from worldcast.profiling.profiler import KVUsage, Profiler, Span

log = logging.getLogger(__name__)


class TextEncoder(Protocol):
    def encode(self, prompt: str) -> torch.Tensor:
        """prompt -> (L, text_dim) embeddings."""


class Decoder(Protocol):
    def new_state(self) -> object: ...

    def decode_block(self, latents: torch.Tensor, state: object) -> torch.Tensor:
        """(C, f, h, w) latents -> (n, H, W, 3) uint8 frames, continuing from ``state``."""

    def export_state(self, state: object) -> dict:
        """``state`` as plain data (tensors, numbers, lists, dicts) for a snapshot."""

    def import_state(self, data: dict) -> object: ...


def _same_device(a: torch.device, b: torch.device) -> bool:
    """'cuda' and 'cuda:0' are the same device when one of them leaves the index open."""
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


class Engine:
    """Block-diffusion video generation over a paged KV cache.

    ``stream(request)`` is the primary call: a generator yielding each block as it is done.
    ``add_request`` / ``step`` drive several sessions at once (round-robin, one block a step).
    With a ``profiler`` (``worldcast.profiling.Profiler``) every stage and block is recorded.
    """

    def __init__(self, config: EngineConfig, model: CausalWanDiT,
                 text_encoder: TextEncoder | None = None, decoder: Decoder | None = None,
                 profiler: Profiler | None = None) -> None:
        if model.config != config.model:
            raise ValueError("model: its ModelConfig differs from EngineConfig.model")
        if model.dtype != config.torch_dtype:
            raise ValueError(f"model: weights are {model.dtype} but EngineConfig.dtype is {config.dtype!r}; "
                             "build it with that dtype (random_model(..., dtype=config.torch_dtype))")
        if not _same_device(model.device, torch.device(config.device)):
            raise ValueError(f"model: on {model.device} but EngineConfig.device is {config.device!r}")
        self.config = config
        self.model = model.compile_blocks() if config.compile else model
        self.text_encoder = text_encoder
        self.decoder = decoder
        self.schedule = FlowMatchSchedule(config.schedule)
        self.spec = KVCacheSpec.from_engine_config(config)
        self.pool: PagePool | None = None
        self.profiler = profiler
        self.clock = time.perf_counter if profiler is None else profiler.clock
        self.runner = Runner(model, self.schedule, storage=None, clock=self.clock)
        self.scheduler = Scheduler(pool=None)
        self.sessions: dict[int, Session] = {}
        self._ids = itertools.count()
        self._prompt_cache: dict[str, TextContext] = {}
        self.applied_policies: dict[int, str] = {}  # request id -> what the budget made the engine do
        self._fixed_pages = self._fixed_pool_pages()  # None: the pool grows with the sessions
        if config.attention == "cache" and self._fixed_pages is not None:
            self._allocate_cache(self._fixed_pages)

    # -- public API -----------------------------------------------------------------------------
    def add_request(self, request: GenerationRequest) -> int:
        prefix_sizes, block_sizes = self._layout(request)
        self._validate(request)
        request_id = next(self._ids)
        arrived = self.clock()
        text = self._encode_prompt(request.prompt, request.prompt_embeds)
        uncond_text = self._negative_text(request)
        encoded = self.clock()
        m = self.config.model
        total_frames = sum(prefix_sizes) + sum(block_sizes)
        session = Session(
            request_id, request, prefix_sizes + block_sizes,
            (m.in_dim, self.config.latent_height, self.config.latent_width),
            text, pages=None,
            decoder_state=self.decoder.new_state() if self.decoder and request.decode else None,
            prefix_blocks=len(prefix_sizes), actions=self._action_groups(request, total_frames),
            window=self.config.cache.window_frames, sink=self.config.cache.sink_frames,
            retrieval=self.config.cache.retrieval_pages, uncond_text=uncond_text)
        if self.config.attention == "cache":
            self._fit(session)  # may refuse the request: nothing is registered before this
            session.pages = PageTable(self.pool)
            if session.resident is not None:
                session.host = PageTable(self.runner.host_tier.pool)
        if self.profiler is not None:
            self.profiler.request_arrived(request_id, arrived)
            self.profiler.add_span(Span("text_encode", arrived, encoded, request_id))
        self.sessions[session.request_id] = session
        self.scheduler.add(session.request_id, session.max_pages if session.pages is not None else 0)
        return session.request_id

    def step(self) -> list[BlockOutput]:
        """Run one block of one session; returns its output (empty when idle)."""
        self.scheduler.admit()
        batch = self.scheduler.schedule()
        if batch is None:
            return []
        return [self._run(self.sessions[batch.request_id])]

    def stream(self, request: GenerationRequest) -> Iterator[BlockOutput]:
        """Yield the request's blocks as they finish. Closing the generator early (``break``)
        aborts the request and returns its pages."""
        request_id = self.add_request(request)
        try:
            while request_id in self.sessions:
                for output in self.step():
                    if output.request_id == request_id:
                        yield output
        finally:
            if request_id in self.sessions:
                self.abort(request_id)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        blocks = list(self.stream(request))
        latents = torch.cat([b.latents for b in blocks], dim=1)
        frames = None
        if blocks and blocks[0].frames is not None:
            frames = torch.cat([b.frames for b in blocks], dim=0)
        return GenerationResult(latents, frames, blocks)

    def switch_prompt(self, request_id: int, prompt: str | None = None, prompt_embeds: torch.Tensor | None = None,
                      recache: bool = False) -> None:
        """Condition a running session on a new prompt from its next block on (blocks are never
        split). The new prompt's cross-attention keys/values replace the old ones; the cached
        self-attention keys/values of earlier frames still carry the old prompt unless
        ``recache``, which re-runs the held frames under the new prompt before the next block
        (LongLive's KV re-cache; costs one forward over the held frames). Without a cache
        (``attention="recompute"``) the past is re-run under the new prompt at every step anyway."""
        if request_id not in self.sessions:
            raise ValueError(f"request_id: no running session {request_id}")
        session = self.sessions[request_id]
        if recache and session.host:
            raise ValueError("recache: not supported while frames are offloaded to host memory "
                             "(over_budget='offload'); switch the prompt without it")
        session.text = self._encode_prompt(prompt, prompt_embeds)
        session.recache_pending = recache and session.pages is not None and session.frames_done > 0

    def fork(self, request_id: int, seed: int | None = None, actions: tuple[int, ...] | None = None) -> int:
        """A second future of a running session, from its current block boundary: a new session
        sharing every cached page of the past (copy-on-write through page refcounts; nothing is
        copied) plus a copy of its decoder state, noise generator and positions. Left as is, the
        fork generates exactly what the original will. ``seed`` draws the fork's future noise
        from a fresh generator; ``actions`` (per pixel frame, the whole video's, as in the
        request) steers its future differently. Returns the fork's request id."""
        if request_id not in self.sessions:
            raise ValueError(f"request_id: no running session {request_id}")
        parent = self.sessions[request_id]
        if parent.pages is None:
            raise ValueError("fork: needs the paged cache (EngineConfig.attention='cache')")
        if parent.in_prefix:
            raise ValueError("fork: the session is still committing its given prefix; fork after it")
        request = dataclasses.replace(parent.request, seed=parent.request.seed if seed is None else seed,
                                      actions=parent.request.actions if actions is None else actions)
        groups = parent.actions if actions is None else self._forked_actions(parent, request)
        child = dataclasses.replace(
            parent, request_id=next(self._ids), request=request, pages=None, host=None, staging=[],
            history=list(parent.history),
            decoder_state=copy.deepcopy(parent.decoder_state), actions=groups)
        if seed is None:  # the same future noise as the original's
            child.generator.set_state(parent.generator.get_state())
        self._fit(child)
        child.pages = parent.pages.fork()
        child.host = parent.host.fork() if parent.host is not None else None
        self.sessions[child.request_id] = child
        self.scheduler.add(child.request_id, child.max_pages)
        if self.profiler is not None:
            self.profiler.request_arrived(child.request_id, self.clock())
        return child.request_id

    def save(self, request_id: int, path: str | Path) -> Path:
        """Write a running session to ``path`` (atomically, checksummed, versioned: see
        ``engine/snapshot.py``) so that ``restore`` — in this process or another, with the same
        model and settings — continues it exactly as if it had never stopped."""
        if request_id not in self.sessions:
            raise ValueError(f"request_id: no running session {request_id}")
        session = self.sessions[request_id]
        if session.pages is None:
            raise ValueError("save: needs the paged cache (EngineConfig.attention='cache')")
        request = session.request
        payload = {
            "engine": self._fingerprint(),
            "request": {"num_latent_frames": request.num_latent_frames, "prompt": request.prompt,
                        "prompt_embeds": request.prompt_embeds, "seed": request.seed, "noise": request.noise,
                        "step_noise": request.step_noise, "decode": request.decode,
                        "prefix_latents": request.prefix_latents,
                        "actions": None if request.actions is None else list(request.actions)},
            "block_sizes": session.block_sizes, "prefix_blocks": session.prefix_blocks,
            "window": session.window, "sink": session.sink, "retrieval": session.retrieval,
            "next_block": session.next_block,
            "frames_done": session.frames_done, "recache_pending": session.recache_pending,
            "text": [list(kv) for kv in session.text.kv], "actions": session.actions,
            "uncond_text": None if session.uncond_text is None else [list(kv) for kv in session.uncond_text.kv],
            "history": [[start, latents] for start, latents in session.history],
            "generator": session.generator.get_state(),
            "held_frames": session.pages.held_frames + (session.host.held_frames if session.host else []),
            "end_frame": session.pages.end_frame, "pages": self._export_pages(session),
            "decoder": None if session.decoder_state is None else self.decoder.export_state(session.decoder_state),
        }
        return write_snapshot(path, payload)

    def restore(self, path: str | Path) -> int:
        """A session from a file written by ``save``; returns its new request id. The file is
        checked (format, length, checksum, engine settings) before anything is allocated."""
        data = read_snapshot(path)
        check_compatible(data["engine"], self._fingerprint())
        r = data["request"]
        request = GenerationRequest(
            r["num_latent_frames"], prompt=r["prompt"], prompt_embeds=r["prompt_embeds"], seed=r["seed"],
            noise=r["noise"], step_noise=r["step_noise"], decode=r["decode"], prefix_latents=r["prefix_latents"],
            actions=None if r["actions"] is None else tuple(r["actions"]))
        if data["decoder"] is not None and self.decoder is None:
            raise ValueError("snapshot: the session decodes frames but this engine has no decoder")
        m = self.config.model
        session = Session(
            next(self._ids), request, list(data["block_sizes"]), (m.in_dim, self.config.latent_height,
                                                                  self.config.latent_width),
            TextContext([tuple(kv) for kv in data["text"]]), pages=None,
            decoder_state=None if data["decoder"] is None else self.decoder.import_state(data["decoder"]),
            prefix_blocks=data["prefix_blocks"], window=data["window"], sink=data["sink"],
            retrieval=data["retrieval"], actions=data["actions"],
            next_block=data["next_block"], frames_done=data["frames_done"],
            history=[(start, latents) for start, latents in data["history"]],
            recache_pending=data["recache_pending"],
            uncond_text=None if data["uncond_text"] is None else TextContext([tuple(kv) for kv in data["uncond_text"]]))
        session.generator.set_state(data["generator"])
        self._fit(session)
        self._import_pages(session, list(data["held_frames"]), data["end_frame"], data["pages"])
        self.sessions[session.request_id] = session
        self.scheduler.add(session.request_id, session.max_pages)
        if self.profiler is not None:
            self.profiler.request_arrived(session.request_id, self.clock())
        return session.request_id

    def _export_pages(self, session: Session) -> dict:
        """Every held frame's pages as stored, resident ones first, then offloaded ones."""
        pages = self.runner.storage.export_pages(session.pages.pages)
        if session.host:
            pages = concat_rows(pages, self.runner.host_tier.export_pages(session.host.pages))
        return pages

    def _import_pages(self, session: Session, frames: list[int], end_frame: int, data: dict) -> None:
        """Give a restored session pages for ``frames`` (rows of ``data``), offloading the ones
        outside its sink and resident frames if this engine offloads it."""
        order = sorted(range(len(frames)), key=frames.__getitem__)
        frames, data = [frames[i] for i in order], select_rows(data, order)
        on_host = set()
        if session.resident is not None:
            limit = session.frames_done - session.resident
            on_host = {f for f in frames if session.sink <= f < limit}
        device_rows = [i for i, f in enumerate(frames) if f not in on_host]
        session.pages = PageTable.restore(self.pool, [frames[i] for i in device_rows], end_frame)
        self.runner.storage.import_pages(session.pages.pages, select_rows(data, device_rows))
        if session.resident is not None:
            host_rows = [i for i, f in enumerate(frames) if f in on_host]
            session.host = PageTable(self.runner.host_tier.pool)
            self.runner.host_tier.reserve(len(host_rows))
            session.host.adopt_frames([frames[i] for i in host_rows])
            self.runner.host_tier.import_pages(session.host.pages, select_rows(data, host_rows))

    def _fingerprint(self) -> dict:
        """What a snapshot's keys/values and latents depend on: they are only valid here if equal."""
        c = self.config
        return {"model": dataclasses.asdict(c.model), "schedule": dataclasses.asdict(c.schedule),
                "height": c.height, "width": c.width, "vae_stride": list(c.vae_stride),
                "frames_per_block": c.frames_per_block, "dtype": c.dtype,
                "cache_dtype": str(self.spec.dtype), "quantization": self.spec.quantization,
                "key_means": self.spec.key_means}

    def abort(self, request_id: int) -> None:
        """Drop a request and return its pages."""
        session = self.sessions.pop(request_id)
        self.scheduler.remove(request_id)
        session.release()

    # -- internals ------------------------------------------------------------------------------
    def _layout(self, request: GenerationRequest) -> tuple[list[int], list[int]]:
        """(prefix blocks, generated blocks); the first block of the video follows the
        independent-first-frame rule whether it is given or generated."""
        if request.prefix_latents is None:
            return [], self.config.block_sizes(request.num_latent_frames)
        prefix = request.prefix_latents.shape[1]
        try:
            prefix_sizes = self.config.block_sizes(prefix)
        except ValueError as err:
            raise ValueError(f"prefix_latents: {err}") from None
        return prefix_sizes, self.config.continuation_block_sizes(request.num_latent_frames)

    def _action_groups(self, request: GenerationRequest, latent_frames: int) -> torch.Tensor | None:
        """Per-pixel-frame actions -> (latent_frames, actions_per_frame) ids: latent frame j gets
        the actions taken between latent frames j - 1 and j; frame 0 gets 'none' (id 0)."""
        m = self.config.model
        if request.actions is None:
            return None
        if not m.num_actions:
            raise ValueError("actions: this model is not action-conditioned (ModelConfig.num_actions is 0)")
        k = m.actions_per_frame
        needed = k * (latent_frames - 1)
        if len(request.actions) < needed:
            raise ValueError(f"actions: {latent_frames} latent frames need at least {needed} per-pixel-frame "
                             f"actions ({k} per latent frame after the first), got {len(request.actions)}")
        if max(request.actions) >= m.num_actions:
            raise ValueError(f"actions: ids must be below {m.num_actions} (ModelConfig.num_actions), "
                             f"got {max(request.actions)}")
        ids = torch.tensor(request.actions[:needed], dtype=torch.long).view(-1, k)
        return torch.cat([torch.zeros(1, k, dtype=torch.long), ids])

    def _forked_actions(self, parent: Session, request: GenerationRequest) -> torch.Tensor | None:
        """A fork's grouped actions: new ones may steer only its future; the frames already made
        (and cached, with positions that may follow the camera) keep the parent's."""
        groups = self._action_groups(request, parent.num_frames)
        done = parent.frames_done
        before = parent.actions if parent.actions is not None else torch.zeros_like(groups)
        if not torch.equal(groups[:done], before[:done]):
            pixel_actions = (done - 1) * self.config.model.actions_per_frame
            raise ValueError(f"actions: a fork keeps its past; the first {pixel_actions} per-pixel-frame actions "
                             f"must be the original's")
        return groups

    def _run(self, session: Session) -> BlockOutput:
        block_index, frame_start, is_prefix = session.next_block, session.frames_done, session.in_prefix
        spans, flops = [], 0
        if session.recache_pending:  # a prompt switch asked to rebuild the cached frames first
            recached = self.runner.recache(session)
            spans, flops = list(recached.spans), recached.flops
            session.recache_pending = False
        if session.pages is not None:  # the block's pages; the scheduler reserved room for them
            session.pages.append_frames(session.current_block_frames)
            if session.host and not session.staging:  # first block with offloaded context
                session.staging = self.pool.allocate(session.staging_size)
        result = self.runner.run_block(session)
        latents = result.latents[0].float().cpu()
        spans += result.spans
        flops += result.flops
        frames = None
        if session.decoder_state is not None:
            start = self.clock()
            frames = self.decoder.decode_block(latents, session.decoder_state)
            spans.append(Span("decode", start, self.clock(), session.request_id, block_index))
        session.advance(result.latents)
        session.evict_stale()
        self._offload(session)
        if self.profiler is not None:
            self.profiler.block_done(session.request_id, block_index, latents.shape[1],
                                     0 if frames is None else len(frames), spans, flops, self._kv_usage(session))
        if session.finished:
            self._finish(session)
        timings: dict[str, float] = {}
        for span in spans:
            timings[span.name] = timings.get(span.name, 0.0) + span.seconds
        return BlockOutput(session.request_id, block_index, frame_start, latents, frames, timings,
                           is_last=session.finished, is_prefix=is_prefix)

    def _offload(self, session: Session) -> None:
        """Move the session's frames that left its resident range to host memory."""
        frames = session.frames_to_offload()
        if not frames or session.finished:  # a finished session's pages are about to be freed
            return
        tier = self.runner.host_tier
        tier.reserve(len(frames))
        device_pages = [session.pages.page(f) for f in frames]
        tier.copy_out(self.runner.storage, device_pages, session.host.adopt_frames(frames))
        session.pages.evict(frames[0], frames[-1] + 1)

    def _kv_usage(self, session: Session) -> KVUsage:
        """KV bytes held by ``session`` and by the pool after its block (zero without a cache)."""
        if session.pages is None or self.pool is None:
            return KVUsage()
        page = self.spec.bytes_per_page
        reserved = self.scheduler.reserved.get(session.request_id, 0)
        return KVUsage((len(session.pages) + len(session.staging)) * page, reserved * page,
                       self.pool.num_pages * page, self.pool.num_used * page,
                       len(session.host) * self.runner.host_tier.spec.bytes_per_page if session.host else 0)

    def _finish(self, session: Session) -> None:
        self.scheduler.remove(session.request_id)
        session.release()
        del self.sessions[session.request_id]

    def _validate(self, request: GenerationRequest) -> None:
        cfg = self.config
        shape = (cfg.model.in_dim, request.num_latent_frames, cfg.latent_height, cfg.latent_width)
        if request.noise is not None and tuple(request.noise.shape) != shape:
            raise ValueError(f"noise: expected shape {shape} (C, F, h, w), got {tuple(request.noise.shape)}")
        steps = self.schedule.num_steps - 1
        if request.step_noise is not None and tuple(request.step_noise.shape) != (steps, *shape):
            raise ValueError(f"step_noise: expected shape {(steps, *shape)}, got "
                             f"{tuple(request.step_noise.shape)}")
        if request.prompt_embeds is not None:
            self._check_prompt_embeds(request.prompt_embeds)
        if request.prefix_latents is not None:
            C, _, h, w = request.prefix_latents.shape
            expected = (cfg.model.in_dim, cfg.latent_height, cfg.latent_width)
            if (C, h, w) != expected:
                raise ValueError(f"prefix_latents: expected (C, frames, h, w) with (C, h, w) = {expected}, got "
                                 f"{tuple(request.prefix_latents.shape)}")
        if request.prompt is not None and self.text_encoder is None:
            raise ValueError("prompt: this engine has no text encoder; pass prompt_embeds instead")
        prefix = 0 if request.prefix_latents is None else request.prefix_latents.shape[1]
        if prefix + request.num_latent_frames > cfg.model.rope_max_positions:
            raise ValueError(f"num_latent_frames: prefix plus generated frames must be at most "
                             f"{cfg.model.rope_max_positions} (ModelConfig.rope_max_positions), got "
                             f"{prefix + request.num_latent_frames}")

    def _encode_prompt(self, prompt: str | None, prompt_embeds: torch.Tensor | None) -> TextContext:
        """Cross-attention context of a prompt (text cached per prompt) or of given embeddings."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("prompt: give exactly one of prompt or prompt_embeds")
        if prompt_embeds is not None:
            self._check_prompt_embeds(prompt_embeds)
            return self.model.encode_text(prompt_embeds[None])
        if not prompt.strip():
            raise ValueError("prompt: must not be empty")
        if self.text_encoder is None:
            raise ValueError("prompt: this engine has no text encoder; pass prompt_embeds instead")
        if prompt not in self._prompt_cache:
            embeds = self.text_encoder.encode(prompt)
            self._prompt_cache[prompt] = self.model.encode_text(embeds[None])
        return self._prompt_cache[prompt]

    def _negative_text(self, request: GenerationRequest) -> TextContext | None:
        """Cross-attention context of guidance's unconditional branch (None without guidance):
        the negative prompt's, by default the empty prompt's."""
        if self.config.schedule.guidance_scale == 1.0:
            return None
        if request.negative_prompt_embeds is not None:
            self._check_prompt_embeds(request.negative_prompt_embeds, "negative_prompt_embeds")
            return self.model.encode_text(request.negative_prompt_embeds[None])
        if self.text_encoder is None:
            raise ValueError("negative_prompt_embeds: guidance (ScheduleConfig.guidance_scale != 1) runs an "
                             "unconditional branch; this engine has no text encoder, so pass negative_prompt_embeds")
        prompt = request.negative_prompt or ""
        if prompt not in self._prompt_cache:  # "" is never a prompt of its own: prompts must not be empty
            self._prompt_cache[prompt] = self.model.encode_text(self.text_encoder.encode(prompt)[None])
        return self._prompt_cache[prompt]

    def _check_prompt_embeds(self, prompt_embeds: torch.Tensor, name: str = "prompt_embeds") -> None:
        cfg = self.config.model
        if prompt_embeds.ndim != 2:
            raise ValueError(f"{name}: expected a (tokens, text_dim) tensor, got shape {tuple(prompt_embeds.shape)}")
        tokens, dim = prompt_embeds.shape
        if dim != cfg.text_dim or not 0 < tokens <= cfg.text_len:
            raise ValueError(f"{name}: expected (tokens <= {cfg.text_len}, {cfg.text_dim}), got {(tokens, dim)}")

    def _fixed_pool_pages(self) -> int | None:
        """Pages of a fixed pool (``num_pages`` or a memory budget), or None for an automatic one."""
        cache = self.config.cache
        if cache.num_pages is not None:
            return cache.num_pages
        if cache.budget_bytes is None and cache.budget_fraction is None:
            return None
        name = "budget_bytes" if cache.budget_bytes is not None else "budget_fraction"
        device = torch.device(self.config.device)
        budget = cache.budget_bytes or int(cache.budget_fraction * device_total_memory(device))
        pages = budget // self.spec.bytes_per_page
        block = self.config.frames_per_block
        if pages < block:
            raise ValueError(f"CacheConfig.{name}: {budget / 2**20:.1f} MiB holds {pages} KV page(s) of "
                             f"{self.spec.bytes_per_page / 2**20:.2f} MiB; one block needs {block}")
        log.info("KV cache budget %.1f MiB: %d pages", budget / 2**20, pages)
        return pages

    def _fit(self, session: Session) -> None:
        """Make room for a new session: a fixed pool must hold it on its own (or, with
        ``over_budget="window"``, with the largest sliding window that fits); an automatic pool
        (no ``num_pages``, no budget) grows to hold every live session at once."""
        if self._fixed_pages is not None:
            if session.max_pages > self.pool.num_pages:
                self._over_budget(session)
            return
        live = sum(s.max_pages for s in self.sessions.values() if s.pages is not None)
        wanted = live + session.max_pages
        if self.pool is None:
            self._allocate_cache(wanted)
        elif wanted > self.pool.num_pages:
            log.info("KV cache: growing from %d to %d pages", self.pool.num_pages, wanted)
            self.pool.grow(wanted)
            self.runner.storage.grow(wanted)

    def _over_budget(self, session: Session) -> None:
        cache, page = self.config.cache, self.spec.bytes_per_page
        window = self.pool.num_pages - max(session.block_sizes) - session.sink
        needed = (f"needs {session.max_pages} KV pages ({session.max_pages * page / 2**20:.1f} MiB) but the cache "
                  f"holds {self.pool.num_pages} ({self.pool.num_pages * page / 2**20:.1f} MiB)")
        if cache.over_budget == "offload":
            self._plan_offload(session, needed)
            return
        if cache.over_budget == "window" and window >= 1:
            session.window = window if session.window is None else min(session.window, window)
            session.retrieval = 0  # retrieval keeps every frame: it cannot live within the budget
            self.applied_policies[session.request_id] = f"sliding window of {session.window} latent frames"
            log.warning("request %d %s: running it with a sliding window of %d latent frames (over_budget='window')",
                        session.request_id, needed, session.window)
            return
        raise ValueError(f"num_latent_frames: {needed}; shorten the video, set CacheConfig.window_frames (or "
                         f"over_budget='window'), quantize the pages (CacheConfig.quantization) or raise the budget")

    def _plan_offload(self, session: Session, needed: str) -> None:
        """Keep the sink and as many recent frames as fit on the device, the rest on the host."""
        held, block = session.max_held_frames, max(session.block_sizes)
        plan = plan_offload(self.pool.num_pages, held, block, session.sink, self.spec.num_layers)
        if plan is None:
            raise ValueError(f"num_latent_frames: {needed}, and offloading cannot make it fit: staging the "
                             f"offloaded frames takes 2/{self.spec.num_layers} of their pages, more than it frees "
                             f"here; use a sliding window (over_budget='window'), quantize the pages or raise the "
                             f"budget")
        session.resident, session.staging_size = plan
        if self.runner.host_tier is None:
            self.runner.host_tier = HostTier(self.spec, self.model.device)
        offloaded = held - block - session.sink - session.resident
        host_mib = offloaded * self.runner.host_tier.spec.bytes_per_page / 2**20
        self.applied_policies[session.request_id] = (
            f"offload: {session.resident} recent latent frames resident, up to {offloaded} in host memory "
            f"({host_mib:.1f} MiB), {session.staging_size} page(s) of staging")
        log.warning("request %d %s: keeping %d recent latent frames on the device and up to %d (%.1f MiB) in host "
                    "memory (over_budget='offload')", session.request_id, needed, session.resident, offloaded, host_mib)

    def _allocate_cache(self, num_pages: int) -> None:
        log.info("KV cache: %d pages x %.1f MiB", num_pages, self.spec.bytes_per_page / 2**20)
        self.pool = PagePool(num_pages)
        self.runner.storage = make_storage(self.spec, num_pages, self.model.device)
        self.scheduler.pool = self.pool
