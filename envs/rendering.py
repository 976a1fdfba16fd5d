"""Fast headless MuJoCo rendering: EGL, no MSAA, no shadows or reflections, one camera.

At 64x64 pixels the default visual settings spend most of a frame on multisampling and
shadow passes; with them off and one camera (scene + GL context) reused for the life of the
process, software EGL renders ~1000-2000 frames/s on one core instead of ~70.
"""

from __future__ import annotations

import os

__all__ = ["configure_headless", "disable_msaa", "fast_scene_flags"]


def configure_headless() -> None:
    """Default to ``MUJOCO_GL=egl`` and single-threaded llvmpipe; explicit settings win.

    Must run before mujoco, dm_control, gymnasium's MuJoCo envs or OpenGL are imported. Mesa's
    llvmpipe otherwise starts one raster thread per core: at small images the hand-off costs
    more than it saves, and the threads fight the parallel collection workers.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("LP_NUM_THREADS", "0")


def disable_msaa(model) -> None:
    """Turn off multisampling of the offscreen buffer; call before the GL context exists."""
    model.vis.quality.offsamples = 0


def fast_scene_flags(scene) -> None:
    """Switch off the shadow and reflection passes of an ``MjvScene``."""
    import mujoco

    scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
