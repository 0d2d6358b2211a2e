"""`explore`: grow a tree of completions by hand — fork at any token, continue, sample from any
node — with every branch's exact probability. The explorer web app (`tokendice explore`)
drives an `Explorer`; so can a notebook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokendice.api._common import EngineArg, check_context, engine_spec, load, preflight, sampler, store_context
from tokendice.api._registry import loads
from tokendice.api._resume import resumed_engine
from tokendice.engines.base import Engine, require_logits
from tokendice.errors import ParameterError, StoreError
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.experiments.explore.session import ExploreSession, OnStep
from tokendice.experiments.explore.tree import Branch, Exploration, NodeSample
from tokendice.experiments.trace.trace import TraceStep
from tokendice.inputs import check_prompt
from tokendice.params import SamplingParams, require_bool, require_int
from tokendice.store import Store
from tokendice.store.records import RunRecord


class Explorer:
    """A live explorer session: the loaded engine and the tree it grows (`tree`, an `Exploration`).

    Every change is saved to the run (`run_id`) at once, so nothing is lost if the session ends;
    `td.load_run(run_id)` reads the tree back and `td.explore(open=run_id)` goes on with it.
    """

    def __init__(self, session: ExploreSession, db: Any = None, save: bool = True) -> None:
        self._session = session
        self._db = db
        self._save = save
        if save:
            session.on_change = self._store

    @property
    def tree(self) -> Exploration:
        return self._session.tree

    @property
    def run_id(self) -> str | None:
        return self.tree.run_id

    @property
    def engine(self) -> Engine:
        return self._session.engine

    @property
    def params(self) -> SamplingParams:
        return self._session.params

    def set_params(self, params: SamplingParams | None = None, **sampling: Any) -> SamplingParams:
        """The sampler for new branches, samples and step views (SamplingParams keywords, or `params`)."""
        chosen = sampler(self.set_params, params or self.params, sampling)
        self._session.set_params(chosen)
        return chosen

    def fork(self, branch: int, step: int, token_id: int, on_step: OnStep | None = None) -> Branch:
        """A new branch: `branch`'s first `step` tokens, then `token_id`, then sampled to the end.
        `on_step(step)` hears of every step as soon as it is decoded (the forced one first)."""
        return self._session.fork(branch, step, token_id, on_step)

    def sample(self, branch: int, step: int, n: int = 100, seed: int | None = None) -> NodeSample:
        """n completions sampled from the node made of `branch`'s first `step` tokens (branching
        sampler, the current sampler), with counts, 95% Wilson intervals and exact probabilities."""
        return self._session.sample(branch, step, n, seed)

    def step_view(self, branch: int, step: int, params: SamplingParams | None = None, **sampling: Any) -> TraceStep:
        """The branch's step recomputed under a sampler (default: the current one): its top tokens
        with the probability after every stage of the chain."""
        chosen = sampler(self.step_view, params or self.params, sampling)
        return self._session.step_view(branch, step, chosen)

    def export(self, path: str | Path) -> Path:
        """Write the tree as JSON (reopen it with `td.explore(open=path)`)."""
        from tokendice.inputs import check_output_path

        target = check_output_path(path, "path")
        target.write_text(self.tree.to_json(), encoding="utf-8")
        return target

    def __repr__(self) -> str:
        return f"<Explorer {self.tree.headline()}>"

    def _repr_html_(self) -> str:
        return self.tree._repr_html_()

    def _store(self, tree: Exploration) -> None:
        with Store(self._db) as store:
            if tree.run_id is None:
                extra = {"explore": {"prompt": tree.prompt, "seed": tree.seed, "top": tree.top, "chat": tree.chat}}
                tree.run_id = store.start_run("explore", tree.prompt, self.engine.describe(), tree.params, extra)
            store.save_result(tree.run_id, "tree", tree.to_dict())
            store.set_status(tree.run_id, "complete")  # the stored tree is whole after every change


def explore(
    prompt: str | None = None,
    *,
    open: str | dict[str, Any] | None = None,
    engine: EngineArg = None,
    model: str | None = None,
    params: SamplingParams | None = None,
    seed: int = 0,
    top: int = 10,
    chat: bool = False,
    save: bool = True,
    db: str | None = None,
    on_step: OnStep | None = None,
    **sampling: Any,
) -> Explorer:
    """Start exploring `prompt` (its first branch is traced at once; `on_step` hears of each step),
    or reopen a tree: `open` is a stored explore run's id, an exported JSON file, or its dict. The
    engine loads once; forks reuse the KV cache of the prefix they leave from."""
    if (prompt is None) == (open is None):
        raise ParameterError("give a prompt to explore, or open= a stored tree (a run id or an exported JSON file)", param="prompt")
    if open is not None:
        return _reopen(open, engine, model, db, save)
    chosen = sampler(explore, params, sampling)
    check_prompt(prompt)
    require_int("seed", seed, 0)
    require_int("top", top, 1, 100)
    require_bool("chat", chat)
    target = engine_spec(engine, model)
    with store_context(save, db):
        preflight(target, [prompt], chat, chosen.max_new_tokens)
    loaded = load(target)
    require_logits(loaded, "the explorer (every step's distribution)")
    ids = encode_prompt(loaded.tokenizer, prompt, chat)
    check_context(loaded, [ids], chosen.max_new_tokens)
    tree = Exploration(prompt, ids, loaded.name, loaded.model_id, chosen.to_dict(), seed, top, chat)
    explorer = Explorer(ExploreSession(loaded, tree), db, save)
    explorer._session.start(on_step)
    return explorer


def _reopen(source: Any, engine: EngineArg, model: str | None, db: Any, save: bool) -> Explorer:
    path = Path(str(source)).expanduser() if isinstance(source, str) else None
    if isinstance(source, dict) or (path is not None and path.is_file()):
        try:
            data = source if isinstance(source, dict) else json.loads(path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
            tree = Exploration.from_dict(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ParameterError(f"not an exported explorer tree ({exc!r})", param="open") from None
        tree.run_id = None  # saved as a new run
        loaded = load(engine_spec(engine or tree.engine, model if engine is not None or model is not None else tree.model))
    else:
        with Store(db) as store:
            record = store.get_run(str(source))
            if record.kind != "explore":
                raise ParameterError(f"run {record.id} is a {record.kind} run, not an explorer tree", param="open")
            tree = _load(store, record)
        spec, differences = resumed_engine(record, engine, model)
        if differences:
            raise ParameterError("; ".join(text for _, text in differences), param=differences[0][0])
        loaded = load(spec)
    if (loaded.name, loaded.model_id) != (tree.engine, tree.model):
        raise ParameterError(f"the tree was grown on {tree.engine}/{tree.model}, not {loaded.name}/{loaded.model_id}", param="engine")
    return Explorer(ExploreSession(loaded, tree), db, save)


@loads("explore")
def _load(store: Store, record: RunRecord) -> Exploration:
    data = store.get_result(record.id, "tree")
    if data is None:
        raise StoreError(f"run {record.id} holds no explorer tree")
    tree = Exploration.from_dict(data)
    tree.run_id = record.id
    return tree

