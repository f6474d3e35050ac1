"""Pictures of results (PNG), drawn with matplotlib's Agg backend."""

from __future__ import annotations

import io
import math
import os

import numpy as np

from tomoseg.io.atomic import atomic_output

PALETTE = ["#f5c200", "#e8402a", "#2a9df4", "#55c667", "#b86bff", "#ff8fd0", "#00c2b8"]
PICK_COLOUR = "cyan"
TRUE_PARTICLE_COLOUR = "white"
OVERLAY_ALPHA = 0.5


def sphere_sections(
    points_xyz: np.ndarray, axis: int, position: float, diameter: float, min_radius: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Where spheres of ``diameter`` voxels centred on ``points_xyz`` cut the plane ``coord[axis] == position``.

    ``axis``: 0, 1, 2 for the x, y, z coordinate (a slice z = 10 of a (z, y, x) volume is
    ``axis=2, position=10``). A sphere whose centre is ``d`` voxels from the plane cuts it in
    a circle of radius ``sqrt((diameter / 2)^2 - d^2)``. Returns the indices of the points
    whose circle is wider than ``min_radius`` voxels and those radii.
    """
    points = np.asarray(points_xyz, dtype=float).reshape(-1, 3)
    r2 = (diameter / 2) ** 2 - (points[:, axis] - position) ** 2
    radius = np.sqrt(np.clip(r2, 0.0, None))
    index = np.flatnonzero(radius > min_radius)
    return index, radius[index]


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 times a power of ten that is <= ``target`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(target))
    return max(m * power for m in (1, 2, 5) if m * power <= target)


def _scale_bar(ax, voxel_size: float, width_voxels: int, height_voxels: int) -> None:
    """A white bar of a round number of nm (about a quarter of the width) in the lower left corner."""
    import matplotlib.patheffects as pe

    nm = nice_length(0.25 * width_voxels * voxel_size / 10.0)
    margin = 0.04 * width_voxels
    x0, y0 = margin, height_voxels - margin
    ax.plot([x0, x0 + nm * 10.0 / voxel_size], [y0, y0], color="white", linewidth=3, solid_capstyle="butt",
            path_effects=[pe.withStroke(linewidth=5, foreground="black")])
    ax.text(x0 + nm * 5.0 / voxel_size, y0 - margin / 2, f"{nm:g} nm", color="white", ha="center", va="bottom",
            fontsize=10, fontweight="bold", path_effects=[pe.withStroke(linewidth=3, foreground="black")])


def _grey(ax, img: np.ndarray) -> None:
    """The slice in grey, contrast from its 1st to 99th percentile, no ticks."""
    img = np.asarray(img, dtype=np.float32)
    lo, hi = np.percentile(img, [1, 99])
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _overlay(ax, labels: np.ndarray, colour_of_value: dict[int, str]) -> None:
    """Labels as translucent colours (0 and values without a colour stay clear)."""
    from matplotlib.colors import to_rgba

    lut = np.zeros((max([*colour_of_value, int(labels.max(initial=0))]) + 1, 4))
    for value, colour in colour_of_value.items():
        lut[value] = to_rgba(colour, OVERLAY_ALPHA)
    ax.imshow(lut[np.asarray(labels, dtype=np.intp)], interpolation="nearest")


def _circles(ax, points_xyz, axis: int, position: float, diameter: float, plot_axes: tuple[int, int], **style) -> None:
    """Circles where the particles of ``diameter`` voxels cut this slice; ``plot_axes``: the (x, y) of the plot."""
    from matplotlib.patches import Circle

    if points_xyz is None or not diameter:
        return
    index, radii = sphere_sections(points_xyz, axis, position, diameter)
    for p, r in zip(np.asarray(points_xyz)[index], radii):
        ax.add_patch(Circle((p[plot_axes[0]], p[plot_axes[1]]), r, fill=False, **style))


def _power_spectrum(ax, xz: np.ndarray) -> None:
    """log |FFT| of an XZ slice on equal frequency axes: the missing wedge is the dark bow tie about kz."""
    power = np.abs(np.fft.fftshift(np.fft.fft2(np.asarray(xz, dtype=np.float64) - np.mean(xz)))) ** 2
    img = np.log10(power + power.max() * 1e-8)
    lo, hi = np.percentile(img, [2, 99.5])
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, extent=(-0.5, 0.5, -0.5, 0.5), aspect="equal",
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("missing wedge", fontsize=10)
    ax.set_xlabel("kx", fontsize=9, labelpad=1)
    ax.set_ylabel("kz", fontsize=9, labelpad=1)


def _save_png(fig, path: str | os.PathLike, dpi: int) -> None:
    """Write ``fig`` atomically as a 256-colour PNG (noisy slices: a third of the RGB file, no visible change)."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    image = Image.open(buffer).convert("RGB").quantize(256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE)
    with atomic_output(path) as tmp:
        image.save(tmp, format="png", optimize=True)


def _texts(title, shape, voxel_size, dice, pick_counts, particle_diameter, untrained) -> tuple[list[str], list[str]]:
    """The lines above the panels (title, grid, scores) and the caption lines below."""
    head = [title] if title else []
    head.append("{} x {} x {} voxels (z, y, x)".format(*shape) + (f" at {voxel_size:g} Å/voxel" if voxel_size else ""))
    scores = []
    if dice:
        scores.append("Dice vs truth: " + ", ".join(f"{n} {d:.2f}" for n, d in dice.items()))
    if pick_counts:
        scores.append("particles: {} picked, {} of {} true particles found".format(*pick_counts))
    if scores:
        head.append("   |   ".join(scores))
    notes = []
    if particle_diameter and voxel_size:
        notes.append(f"Circles: particles of {particle_diameter:g} Å diameter, drawn wherever they cut the slice. "
                     "Dotted lines: where the XY and XZ slices cross.")
    notes.append("Missing wedge: the dark bow tie about kz in the Fourier transform of the XZ slice.")
    if untrained:
        notes.append(f"Not trained: {', '.join(untrained)} (no network in this run, so unlabelled in the annotation).")
    return head, notes


def annotation_figure(
    path: str | os.PathLike,
    tomogram: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    picks_xyz: np.ndarray | None = None,
    z_slices: list[int] | None = None,
    title: str = "",
    colours: list[str] | None = None,
    *,
    voxel_size: float | None = None,
    truth: np.ndarray | None = None,
    truth_names: dict[int, str] | None = None,
    truth_xyz: np.ndarray | None = None,
    particle_diameter: float | None = None,
    dice: dict[str, float] | None = None,
    pick_counts: tuple[int, int, int] | None = None,
    y_slice: int | None = None,
    dpi: int = 100,
) -> None:
    """Rows of XY slices (input, merged labels with picks, ground truth), an XZ view, scale bars and scores.

    ``tomogram``, ``labels``, ``truth``: (z, y, x); label k of ``labels`` is ``names[k-1]``;
    ``truth_names`` maps truth values to names (value 0 and "background" are not drawn).
    ``picks_xyz``, ``truth_xyz``: (n, 3) x, y, z voxels, drawn as circles where a particle of
    ``particle_diameter`` A cuts the shown slice. ``voxel_size``: A / voxel, for the scale bars and circles.
    ``dice``: Dice per feature name; ``pick_counts``: (picked, found, true); both written on top.
    ``y_slice``: the y of the XZ view (default: the middle).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    colours = colours or PALETTE
    nz, ny, nx = tomogram.shape
    z_slices = z_slices or [nz // 3, nz // 2, 2 * nz // 3]
    y_slice = ny // 2 if y_slice is None else y_slice
    truth_names = {v: n for v, n in (truth_names or {}).items() if v and n != "background" and truth is not None}
    colour_of = {n: colours[k % len(colours)] for k, n in enumerate(dict.fromkeys([*names, *truth_names.values()]))}
    result_colours = {k: colour_of[n] for k, n in enumerate(names, start=1)}
    diameter = particle_diameter / voxel_size if particle_diameter and voxel_size else None
    picks = dict(edgecolor=PICK_COLOUR, linewidth=1.4)
    trues = dict(edgecolor=TRUE_PARTICLE_COLOUR, linewidth=1.2, linestyle=(0, (3, 2)))
    untrained = [n for n in truth_names.values() if n not in names]
    head, notes = _texts(title, tomogram.shape, voxel_size, dice, pick_counts, particle_diameter, untrained)

    rows = [("input (preprocessed)", None, None, None, None),
            ("tomoseg annotation", labels, result_colours, picks_xyz, picks)]
    if truth is not None:
        rows.append(("ground truth", truth, {v: colour_of[n] for v, n in truth_names.items()}, truth_xyz, trues))
    ncol, panel = len(z_slices), 3.4  # inches
    xz_height = 1.3 * panel * max(nz / nx, 0.2)
    top, bottom = 0.55 + 0.22 * len(head), 0.65 + 0.19 * len(notes)
    fig = plt.figure(figsize=(0.45 + ncol * panel, len(rows) * panel + xz_height + top + bottom), dpi=dpi)
    height = fig.get_figheight()
    grid = fig.add_gridspec(len(rows) + 1, ncol, height_ratios=[panel] * len(rows) + [xz_height],
                            left=0.45 / fig.get_figwidth(), right=0.985, top=1 - top / height, bottom=bottom / height,
                            hspace=0.1, wspace=0.03)
    for row, (row_name, lab, lut, points, style) in enumerate(rows):
        for col, z in enumerate(z_slices):
            ax = fig.add_subplot(grid[row, col])
            _grey(ax, tomogram[z])
            if lab is not None:
                _overlay(ax, lab[z], lut)
                _circles(ax, points, 2, z, diameter, (0, 1), **style)
            if row == 0:
                ax.set_title(f"XY slice z = {z}", fontsize=11)
                ax.axhline(y_slice, color="white", linewidth=0.8, linestyle=":")
            if row == col == 0 and voxel_size:
                _scale_bar(ax, voxel_size, nx, ny)
            if col == 0:
                ax.set_ylabel(row_name, fontsize=12, fontweight="bold")
            ax.set(xlim=(-0.5, nx - 0.5), ylim=(ny - 0.5, -0.5))

    xz = np.asarray(tomogram[:, y_slice, :])
    xz_grid = grid[-1, :].subgridspec(1, 3, width_ratios=[1, 1, max(nz / nx, 0.2)], wspace=0.1)
    ax = fig.add_subplot(xz_grid[0])
    _grey(ax, xz)
    for z in z_slices:
        ax.axhline(z, color="white", linewidth=0.8, linestyle=":")
    if voxel_size:
        _scale_bar(ax, voxel_size, nx, nz)
    ax.set_ylabel(f"XZ, y = {y_slice}", fontsize=12, fontweight="bold")
    ax.set_title(f"input: all {nz} z slices", fontsize=10)
    ax = fig.add_subplot(xz_grid[1])
    _grey(ax, xz)
    _overlay(ax, labels[:, y_slice, :], result_colours)
    _circles(ax, picks_xyz, 1, y_slice, diameter, (0, 2), **picks)
    outlines = "annotation and picks"
    if truth is not None:
        trained = [v for v, n in truth_names.items() if n in names]
        ax.contour(np.isin(truth[:, y_slice, :], trained), levels=[0.5], colors="white", linewidths=0.7)
        outlines += ", truth outlined in white"
    ax.set(xlim=(-0.5, nx - 0.5), ylim=(nz - 0.5, -0.5))
    ax.set_title(outlines, fontsize=10)
    _power_spectrum(fig.add_subplot(xz_grid[2]), xz)

    handles = [Patch(color=colour_of[n], alpha=0.8, label=n) for n in colour_of]
    if picks_xyz is not None:
        handles.append(Line2D([], [], marker="o", color=PICK_COLOUR, linestyle="", markerfacecolor="none",
                              markersize=10, label="picks"))
    if truth is not None and truth_xyz is not None:
        handles.append(Line2D([], [], marker="o", color="grey", linestyle="", markerfacecolor="none",
                              markersize=10, label="true particles (dashed)"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False, fontsize=10,
               bbox_to_anchor=(0.5, (bottom - 0.15) / height))
    fig.text(0.5, 1 - 0.12 / height, head[0], ha="center", va="top", fontsize=13, fontweight="bold")
    fig.text(0.5, 1 - 0.4 / height, "\n".join(head[1:]), ha="center", va="top", fontsize=11, linespacing=1.4)
    fig.text(0.5, 0.1 / height, "\n".join(notes), ha="center", va="bottom", fontsize=10, style="italic",
             linespacing=1.4)
    _save_png(fig, path, dpi)
    plt.close(fig)
