"""Finding videos in a folder, and splitting them among processes."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                    ".3gp", ".ts", ".mts", ".m2ts", ".vob", ".ogv", ".asf", ".mxf", ".mjpeg", ".mjpg")


def list_videos(root: str | os.PathLike, extensions=VIDEO_EXTENSIONS) -> list[str]:
    """Relative POSIX paths of the files under ``root`` (recursively) whose extension is listed, sorted.
    A folder or broken link named like a video is listed too, and so is a folder that cannot be read, so
    that they are reported, not skipped. Hidden folders under ``root`` (``.git``, ``.Trash``, a cache) and
    macOS's ``._name`` files are left out. A linked folder is searched as if it were there, once."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: input folder does not exist" if not root.exists()
                                else f"{root}: not a folder")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    found = []

    def unreadable(error: OSError) -> None:
        if error.filename and Path(error.filename) != root:
            found.append(Path(error.filename).relative_to(root).as_posix())

    seen = {os.path.realpath(root)}  # folders searched: a link to one of them (a loop, a second link) is not
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        dirnames[:] = [d for d in sorted(dirnames) if not d.startswith(".") and _first_visit(Path(dirpath, d), seen)]
        found += [Path(dirpath, f).relative_to(root).as_posix() for f in filenames + dirnames
                  if Path(f).suffix.lower() in exts and not f.startswith("._")]
    return sorted(found)


def _first_visit(folder: Path, seen: set[str]) -> bool:
    real = os.path.realpath(folder)
    if real in seen:
        return False
    seen.add(real)
    return True


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def require_videos(root: str | os.PathLike, extensions=VIDEO_EXTENSIONS) -> list[str]:
    """``list_videos``, where a folder without a single video file is an error (one that holds images says
    how to make them a video)."""
    found = list_videos(root, extensions)
    if not found:
        frames = list_videos(root, IMAGE_EXTENSIONS)
        hint = (f"; it holds {len(frames)} images, e.g. {frames[0]}: a sequence of frames is read as a video "
                "once made into one, e.g. ffmpeg -framerate 25 -i img1/%06d.jpg seq.mp4") if frames else ""
        raise FileNotFoundError(f"{root}: no video files ({', '.join(extensions)}){hint}")
    return found


def videos_at(path: str | os.PathLike, extensions=VIDEO_EXTENSIONS) -> tuple[str, list[str]]:
    """(folder, relative paths) of the videos ``path`` names: a folder's (``require_videos``), or one file
    named itself, whatever its extension: its folder and its name."""
    path = Path(path)
    if path.is_file():
        return str(path.parent), [path.name]
    return str(path), require_videos(path, extensions)


def shard_from_env(index: int | None = None, count: int | None = None) -> tuple[int, int]:
    """(index, count) of this process: given values, else torchrun's RANK/WORLD_SIZE, else a SLURM
    array's task id/count, else (0, 1)."""
    env = os.environ
    if count is None:
        if "WORLD_SIZE" in env:
            count, index = int(env["WORLD_SIZE"]), int(env.get("RANK", 0)) if index is None else index
        elif "SLURM_ARRAY_TASK_COUNT" in env:
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
            if index is None:
                index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        else:
            count = 1
    index = 0 if index is None else index
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside 0..{count - 1}")
    return index, count


def select_shard(items: list, index: int, count: int) -> list:
    """Every ``count``-th item starting at ``index``: shards are disjoint and cover all items."""
    return items[index::count]


def printable(name: str) -> str:
    """``name`` with the bytes of a file name that are not UTF-8 (surrogate escapes) written as ``\\xNN``:
    the text that video ids, outputs and logs use for it."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def single_line(text: str) -> str:
    """``text`` (a file name, or a reason that names one) for a log or console line: ``printable``, and
    control characters such as a newline in a file name written as escapes (``\\n``)."""
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], printable(text))


def n_videos(n: int) -> str:
    """``1 video``, ``2 videos``: a number of videos in a message."""
    return f"{n} video{'' if n == 1 else 's'}"


def some_of(names, shown: int = 3) -> str:
    """The first ``shown`` of ``names``, quoted, for a message: ``'a', 'b', 'c', ...`` where there are more."""
    names = list(names)
    return ", ".join(map(repr, names[:shown])) + (", ..." if len(names) > shown else "")


NAME_MAX = 255  # bytes in one file name on Linux and macOS file systems


def fitted_name(name: str, suffix: str, limit: int = NAME_MAX) -> str:
    """``name + suffix`` as one file name within ``limit`` bytes: a longer one is cut and ends in a hash of
    the whole, so that two long names that start alike stay apart."""
    whole = os.fsencode(name + suffix)
    if len(whole) <= limit:
        return name + suffix
    tail = "-" + hashlib.sha1(whole).hexdigest()[:12] + suffix
    head = os.fsencode(name)[:limit - len(os.fsencode(tail))]
    return head.decode("utf-8", "ignore") + tail  # a character cut in two is left out


def file_name(video_id: str, suffix: str) -> str:
    """A video's output file (contact sheet, plot) in a flat folder: its id, slashes as ``__``, then
    ``suffix``, cut to fit where it is long."""
    return fitted_name(video_id.replace("/", "__"), suffix)


def tree_path(relative: str, suffix: str) -> PurePosixPath:
    """A video's output file in a tree like the input's: its relative path plus ``suffix``, the last part
    cut to fit where it is long."""
    path = PurePosixPath(relative)
    return path.with_name(fitted_name(path.name, suffix))
