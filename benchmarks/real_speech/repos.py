"""Read files of named public repositories at pinned commits: from local mirrors, else a shallow clone.

Every source of the real-speech set is a file at `owner/name@commit:path`. Pinning the commit makes
a rebuild read the same bytes years later; reading through git (not a checkout) means a mirror can
be a bare repository, and a clone costs one `git fetch --depth 1` of that commit.

Where a repository is looked for, in order:

* each mirror directory (`--mirror DIR`, or `CLSP_SEARCH_SOURCE_MIRRORS`, separated like PATH),
  as `DIR/owner+name` (a clone there, or in its `repo/` folder; bare or not) or `DIR/owner+name.git`;
* the clone cache (`data/real_speech_sources/owner+name.git`), filled by fetching the commit from
  GitHub when network access is allowed.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: Environment variable listing mirror directories (os.pathsep-separated), as `--mirror` does.
MIRRORS_ENV = "CLSP_SEARCH_SOURCE_MIRRORS"


class SourceUnavailable(RuntimeError):
    """A named repository or file cannot be read; the message says how to make it available."""


@dataclass(frozen=True)
class Repo:
    """A public GitHub repository pinned at one commit."""

    name: str  # "owner/name"
    commit: str  # 40 hex digits

    @property
    def url(self) -> str:
        return f"https://github.com/{self.name}.git"

    @property
    def folder(self) -> str:
        """How mirrors and the clone cache name this repository: `owner+name`."""
        return self.name.replace("/", "+")

    def origin(self, path: str) -> str:
        """Where one file comes from, as written in the manifest."""
        return f"github.com/{self.name}@{self.commit}:{path}"


def _git(git_dir: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], capture_output=True, text=not binary, check=False)


def _is_git_dir(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def _has_commit(git_dir: Path, commit: str) -> bool:
    return _git(git_dir, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def mirror_dirs(explicit: list[Path] | None = None) -> list[Path]:
    """Mirror directories to search: those given, then those in `CLSP_SEARCH_SOURCE_MIRRORS`."""
    from_env = [Path(p) for p in os.environ.get(MIRRORS_ENV, "").split(os.pathsep) if p]
    return [*(explicit or []), *from_env]


class RepoStore:
    """Finds (or fetches) each pinned repository once and reads files from its commit."""

    def __init__(self, mirrors: list[Path], cache: Path, allow_network: bool = True) -> None:
        self.mirrors = mirrors
        self.cache = cache
        self.allow_network = allow_network
        self._found: dict[Repo, Path] = {}

    def _mirror_candidates(self, repo: Repo) -> list[Path]:
        out = []
        for root in self.mirrors:
            base = root / repo.folder
            out += [base / "repo" / ".git", base / "repo", base / ".git", base, root / f"{repo.folder}.git"]
        return out

    def git_dir(self, repo: Repo) -> Path:
        """A git directory holding `repo.commit`, fetching it into the cache if no mirror has it."""
        if repo in self._found:
            return self._found[repo]
        cached = self.cache / f"{repo.folder}.git"
        for candidate in [*self._mirror_candidates(repo), cached]:
            if _is_git_dir(candidate) and _has_commit(candidate, repo.commit):
                self._found[repo] = candidate
                return candidate
        if not self.allow_network:
            raise SourceUnavailable(
                f"{repo.name}@{repo.commit[:12]} is in no mirror ({', '.join(map(str, self.mirrors)) or 'none given'}) "
                f"and not in {cached}; run without --offline to fetch it from GitHub, or pass --mirror DIR "
                f"where DIR/{repo.folder} is a clone that has this commit")
        self._fetch(repo, cached)
        self._found[repo] = cached
        return cached

    def _fetch(self, repo: Repo, into: Path) -> None:
        into.mkdir(parents=True, exist_ok=True)
        if not _is_git_dir(into):
            done = subprocess.run(["git", "init", "--bare", "-q", str(into)], capture_output=True, text=True)
            if done.returncode:
                raise SourceUnavailable(f"cannot create {into}: {done.stderr.strip()}")
        done = _git(into, "fetch", "-q", "--depth", "1", repo.url, repo.commit)
        if done.returncode or not _has_commit(into, repo.commit):
            raise SourceUnavailable(
                f"cannot fetch {repo.name}@{repo.commit[:12]} from {repo.url}: {done.stderr.strip() or 'commit missing'}; "
                f"check network access to github.com, or pass --mirror DIR where DIR/{repo.folder} is a clone "
                f"that has this commit")

    def list(self, repo: Repo, prefix: str) -> list[tuple[str, str]]:
        """(path, blob id) of every file under `prefix` at the pinned commit, sorted by path."""
        done = _git(self.git_dir(repo), "ls-tree", "-r", "--full-tree", repo.commit, "--", prefix)
        if done.returncode:
            raise SourceUnavailable(f"cannot list {repo.origin(prefix)}: {done.stderr.strip()}")
        out = []
        for line in done.stdout.splitlines():
            meta, path = line.split("\t", 1)
            kind, blob = meta.split()[1:3]
            if kind == "blob":
                out.append((path, blob))
        return sorted(out)

    def read(self, repo: Repo, path: str) -> bytes:
        """The bytes of one file at the pinned commit."""
        done = _git(self.git_dir(repo), "cat-file", "blob", f"{repo.commit}:{path}", binary=True)
        if done.returncode:
            raise SourceUnavailable(f"cannot read {repo.origin(path)}: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout

    def read_text(self, repo: Repo, path: str) -> str:
        return self.read(repo, path).decode("utf-8", errors="replace")
