"""Rerun a post's experiments on this machine and add the numbers next to the old ones.

A draft (or published post) stores every experiment result as its own file,
``<assets>/results/<experiment>--<machine>--<time>.json``. A rerun:

1. reads those results from the post's branch and runs each experiment again
   here, with the same parameters (machine-specific ones such as thread counts
   are chosen afresh);
2. adds the new result as a *new* file (a new machine is a new column; the
   same machine again is a new dated run): no existing file is ever changed;
3. redraws each experiment's plot from all machines' results, so the newest
   plot shows every machine side by side, and re-renders the post's
   measurements section (between its markers) with a comparison table whose
   columns are the machines;
4. commits with git plumbing, never touching the user's checkout: on the draft
   branch ``drafts/<slug>``, or, for a published post, on a new branch
   ``rerun/<slug>/<machine>`` (a later rerun on the same machine adds to it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ramble2post.errors import BlogRepoError, ExperimentError
from ramble2post.machine import resolve_device
from ramble2post.publish import gitops
from ramble2post.publish.blog import BlogLayout, configured_blog_repo, default_blog_path, detect_layout
from ramble2post.publish.draft import find_post
from ramble2post.publish.markdown import md_table
from ramble2post.publish.measurements import MEASUREMENTS_END, stage_experiment_files
from ramble2post.publish.render import render_measurements, replace_measurements
from ramble2post.publish.slug import slugify

if TYPE_CHECKING:
    from ramble2post.experiments.base import Context, Experiment, Result

log = logging.getLogger(__name__)  # diagnostics; stdout is for results only

RERUN_PREFIX = "rerun/"
MACHINE_PARAMS = frozenset({"threads", "clock", "dtypes"})  # chosen per machine (a GPU adds tf32, fp8), never copied
COMPARE_MAX_KEYS = 12  # summary keys per experiment in the comparison table


@dataclasses.dataclass(frozen=True)
class RerunResult:
    """What a rerun committed."""

    slug: str
    branch: str
    commit: str
    machine: str
    published: bool  # True: the post was published, so the results went to a rerun/ branch
    added: tuple[str, ...]  # repo paths of the new files
    experiments: tuple[str, ...]


Runner = Callable[["Experiment", "Context"], "Result"]


def _default_runner(exp: Experiment, ctx: Context) -> Result:
    return exp.measure(ctx)


def rerun_post(
    *,
    slug: str,
    blog_repo: Path | str | None,
    device: str | None = None,
    quick: bool = False,
    only: Sequence[str] = (),
    posts_dir: str | None = None,
    runner: Runner | None = None,
    say: Callable[[str], None] = log.info,
    lock_wait_s: float = gitops.LOCK_WAIT_S,
) -> RerunResult:
    """Rerun the experiments stored with post ``slug`` on this machine and commit the new results.

    only: experiment names to rerun (default: every experiment the post has results for).
    runner: ``(experiment, context) -> Result``; tests inject a fake one.
    """
    import ramble2post.experiments as ex

    runner = runner or _default_runner
    path = configured_blog_repo(blog_repo) or default_blog_path()
    if not Path(path).exists():
        raise BlogRepoError(f"no blog repo at {path}", hint="pass --blog-repo DIR of the blog that has the post")
    repo = gitops.open_repo(Path(path))
    with gitops.repo_lock(repo, wait_s=lock_wait_s):
        info = find_post(repo, slug=slug, posts_dir=posts_dir)
        base_branch = gitops.default_branch(repo)
        layout = detect_layout(repo, base=gitops.base_sha(repo, base_branch), posts_dir=posts_dir)
        published = not info.branch.startswith(gitops.DRAFT_PREFIX)
        device = resolve_device(device)
        machine = _machine_label(device)
        if published:
            branch = f"{RERUN_PREFIX}{slug}/{slugify(machine, max_len=60)}"
            parent = gitops.ref_sha(repo, f"refs/heads/{branch}") or info.commit
        else:
            branch, parent = info.branch, info.commit
        old = _stored_results(repo, parent, layout.assets_dir(slug))
        known = {e.name for e in ex.all_experiments()}
        # failed runs count too: a machine with more memory may finish what an earlier one could not
        names = list(dict.fromkeys(only or [str(r.get("experiment")) for r in old if r.get("experiment") in known]))
        if not names:
            raise ExperimentError(
                f"{slug} has no experiment results to rerun", hint="name experiments with --experiment NAME"
            )
        audio = _source_audio(repo, parent, layout.assets_dir(slug))
        files: dict[str, bytes] = {}
        new_stored: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="ramble2post-rerun-") as tmp:
            for name in names:
                exp = ex.get(name)
                prior = [r for r in old if r.get("experiment") == name and not r.get("error")]
                ctx = ex.Context(
                    device=device,
                    quick=quick,
                    audio_path=audio,
                    output_dir=Path(tmp) / name,
                    params=_params_for(exp, prior),
                    progress=functools.partial(_say_prefixed, say, name),
                    **_models_for(prior),
                )
                say(f"Rerunning {name} on {machine} ...")
                result = runner(exp, ctx)
                stored, new_files = _stage(exp, result, prior, Path(tmp) / name, layout=layout, slug=slug)
                clash = [p for p in new_files if gitops.path_exists(repo, parent, p) or p in files]
                if clash:
                    raise BlogRepoError(
                        f"refusing to overwrite {', '.join(clash)}",
                        hint="a run with the same start time already exists; run again",
                    )
                files.update(new_files)
                new_stored.append(stored)
        post_md = (gitops.read_blob(repo, parent, info.path) or b"").decode("utf-8")
        section = render_measurements(stored_results=old + new_stored, layout=layout, slug=slug)
        section = _with_comparison(section, old + new_stored)
        files[info.path] = replace_measurements(post_md, section).encode("utf-8")
        message = (
            f"Rerun {', '.join(names)} on {machine}\n\nAdded {len(new_stored)} result(s) measured on "
            f"{machine} next to the earlier machines' (ramble2post).\n\nRamble2post-Slug: {slug}\n"
            f"Ramble2post-Path: {info.path}\n"
        )
        commit = _commit(
            repo,
            branch=branch,
            parent=parent,
            files=files,
            message=message,
            new_branch=published and parent == info.commit,
        )
    added = tuple(sorted(p for p in files if p != info.path))
    return RerunResult(
        slug=slug,
        branch=branch,
        commit=commit,
        machine=machine,
        published=published,
        added=added,
        experiments=tuple(names),
    )


# ------------------------------------------------------------------ helpers


def _machine_label(device: str) -> str:
    from ramble2post.experiments.hardware import machine_label

    return machine_label(device=device)


def _stored_results(repo: gitops.git.Repo, commit: str, assets_dir: str) -> list[dict[str, Any]]:
    out = []
    for path in gitops.list_files(repo, commit, f"{assets_dir}/results"):
        if not path.endswith(".json"):
            continue
        try:
            out.append(json.loads((gitops.read_blob(repo, commit, path) or b"{}").decode("utf-8")))
        except ValueError as e:
            raise BlogRepoError(f"cannot read stored result {path}: {e}") from e
    return sorted(out, key=lambda r: str(r.get("started_at", "")))


def _source_audio(repo: gitops.git.Repo, commit: str, assets_dir: str) -> Path | None:
    """The ramble's audio if the stored transcript names a file that exists on this machine."""
    raw = gitops.read_blob(repo, commit, f"{assets_dir}/source/transcript.json")
    try:
        p = Path(str(json.loads(raw or b"{}").get("audio_path") or ""))
    except ValueError:
        return None
    return p if str(p) not in ("", ".") and p.is_file() else None


def _params_for(exp: Experiment, prior: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The latest earlier run's parameters, minus machine-specific ones and names the experiment no longer has."""
    if not prior:
        return {}
    params = dict(prior[-1].get("params") or {})
    return {k: v for k, v in params.items() if k in exp.params and k not in MACHINE_PARAMS}


def _models_for(prior: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Same Whisper model / LLM by name as the earlier run (paths differ between machines)."""
    out: dict[str, str] = {}
    for m in (prior[-1].get("models") or []) if prior else []:
        if m.get("role") == "whisper" and m.get("name"):
            out["whisper_model"] = str(m["name"])
    return out


def _stage(
    exp: Experiment, result: Result, prior: Sequence[Mapping[str, Any]], out_dir: Path, *, layout: BlogLayout, slug: str
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The new result as a stored dict plus its files; its plot is drawn from every machine's results."""
    from ramble2post.experiments import Result

    out_dir.mkdir(parents=True, exist_ok=True)
    everyone = []
    for r in prior:
        try:
            everyone.append(Result.from_dict(r))
        except (TypeError, KeyError, ValueError):
            continue  # an older/foreign record: still listed in the post, just not in the plot
    everyone.append(result)
    plots = []
    for fname, data in exp.plot(everyone).items():
        (out_dir / fname).write_bytes(data)
        plots.append(fname)
    d = result.to_dict()
    d["plots"] = plots
    d["result_dir"] = str(out_dir)
    stored, files = stage_experiment_files([d], layout=layout, slug=slug)
    return stored[0], files


def _column_name(r: Mapping[str, Any], counts: Mapping[str, int]) -> str:
    m = str(r.get("machine") or "unknown")
    if counts[m] > 1:  # same machine measured more than once: a dated run each, to the second
        m += f" ({str(r.get('started_at', ''))[:19].replace('T', ' ')} UTC)"
    return m


def comparison_table(results: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: per experiment, the summary numbers with one column per machine (dated if repeated)."""
    blocks = []
    by_exp: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        if not r.get("error"):
            by_exp.setdefault(str(r.get("experiment")), []).append(r)
    for name, rs in by_exp.items():
        if len({(r.get("machine"), r.get("started_at")) for r in rs}) < 2:
            continue
        rs = sorted(rs, key=lambda r: str(r.get("started_at", "")))
        counts: dict[str, int] = {}
        for r in rs:
            counts[str(r.get("machine") or "unknown")] = counts.get(str(r.get("machine") or "unknown"), 0) + 1
        keys = [k for k, v in (rs[0].get("summary") or {}).items() if isinstance(v, (int, float)) or v is None]
        keys = [k for k in keys if any((r.get("summary") or {}).get(k) is not None for r in rs)][:COMPARE_MAX_KEYS]
        if not keys:
            continue
        cols = [f"{name}: measure"] + [_column_name(r, counts) for r in rs]
        rows = [[k] + [(r.get("summary") or {}).get(k) for r in rs] for k in keys]
        blocks.append(md_table(cols, rows))
    if not blocks:
        return ""
    return "### Side by side, one column per machine\n\n" + "\n\n".join(blocks) + "\n"


def _with_comparison(section: str, results: Sequence[Mapping[str, Any]]) -> str:
    table = comparison_table(results)
    if not table:
        return section
    i = section.rfind(MEASUREMENTS_END)
    return section[:i] + table + "\n" + section[i:]


def _commit(
    repo: gitops.git.Repo, *, branch: str, parent: str, files: Mapping[str, bytes], message: str, new_branch: bool
) -> str:
    """Commit ``files`` on top of ``parent`` and move ``branch`` there (compare-and-swap on the old tip)."""
    if gitops.branch_checked_out_elsewhere(repo, branch):
        raise BlogRepoError(f"{branch} is checked out in another worktree: not moving it under you")
    tree = gitops.build_tree(repo, parent, files)
    commit = gitops.commit_tree(repo, tree, [parent], message)
    checked_out = gitops.current_branch(repo) == branch
    if checked_out and not gitops.worktree_is_clean(repo):
        raise BlogRepoError(
            f"{branch} is checked out with uncommitted changes: not rerunning over them",
            hint="commit or stash them, or check out another branch, then rerun",
        )
    old = gitops.ZERO_SHA if new_branch else parent
    gitops._git(repo, "update-ref", "-m", "ramble2post: rerun", f"refs/heads/{branch}", commit, old)
    if checked_out:
        gitops._git(repo, "read-tree", "-m", "-u", parent, commit)
    return commit


def _say_prefixed(say: Callable[[str], None], name: str, msg: str) -> None:
    say(f"  {name}: {msg}")
