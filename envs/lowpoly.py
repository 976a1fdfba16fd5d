"""Render-only simplified scenes: draw a MuJoCo model with decimated meshes, physics untouched.

Robot meshes are made for close-ups: the UR5e arm and Robotiq gripper of OGBench's scenes have
about 190 000 triangles, which software rendering draws at ~50 frames/s even at 64 x 64 pixels,
where one pixel spans about a centimetre of the scene. ``SceneRenderer`` draws a *copy* of the
model whose meshes are decimated by vertex clustering at a sub-pixel cell size (every vertex
snapped to the mean of its grid cell, collapsed triangles dropped), and sets that copy's pose
from the live simulation before each frame. The simulated model and data are only read, so the
physics is bit-identical with and without it (tested).
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable

import numpy as np

__all__ = ["SceneRenderer", "cluster_mesh", "simplified_copy"]


def cluster_mesh(verts: np.ndarray, normals: np.ndarray, faces: np.ndarray, cell: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decimate a triangle mesh by vertex clustering on a grid of ``cell`` metres.

    Args:
        verts: ``(V, 3)`` vertex positions; ``normals`` ``(V, 3)`` one normal per vertex.
        faces: ``(F, 3)`` vertex indices.

    Returns:
        ``(C, 3)`` cluster positions (mean of their vertices), ``(C, 3)`` unit normals (mean of
        their vertices' normals), and the ``(F', 3)`` triangles left once those collapsed to a
        line or point and duplicates are dropped (first winding kept, original order).
    """
    if cell <= 0:
        raise ValueError(f"cell must be > 0 metres, got {cell}")
    keys = np.floor(np.asarray(verts, np.float64) / cell).astype(np.int64)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    count = np.bincount(inverse)[:, None]
    pos = np.zeros((len(count), 3))
    np.add.at(pos, inverse, verts)
    nrm = np.zeros((len(count), 3))
    np.add.at(nrm, inverse, normals)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    tri = inverse[np.asarray(faces)]
    keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    tri = tri[keep]
    _, first = np.unique(np.sort(tri, axis=1), axis=0, return_index=True)
    return pos / count, nrm, tri[np.sort(first)]


def _vertex_normals(model, mesh: int) -> np.ndarray:
    """Per-vertex normals of a compiled mesh: the sum of its face-corner normals, normalised."""
    fa, fn = model.mesh_faceadr[mesh], model.mesh_facenum[mesh]
    vn, na = model.mesh_vertnum[mesh], model.mesh_normaladr[mesh]
    corners = model.mesh_face[fa:fa + fn].reshape(-1)
    normals = model.mesh_normal[na + model.mesh_facenormal[fa:fa + fn].reshape(-1)]
    out = np.zeros((vn, 3))
    np.add.at(out, corners, normals)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def simplified_copy(model, cell: float):
    """A deep copy of ``model`` whose meshes are decimated by ``cluster_mesh`` at ``cell``.

    Only the copy's mesh buffers change (each mesh's leading vertex, normal and face slots are
    overwritten and its face count shrinks), so bodies, geoms, cameras and lights, and thus
    every pose, are those of ``model``. Meant for drawing only: never simulate the copy.
    """
    out = copy.deepcopy(model)
    for i in range(model.nmesh):
        va, vn = model.mesh_vertadr[i], model.mesh_vertnum[i]
        fa, fn = model.mesh_faceadr[i], model.mesh_facenum[i]
        na, nn = model.mesh_normaladr[i], model.mesh_normalnum[i]
        pos, nrm, tri = cluster_mesh(model.mesh_vert[va:va + vn], _vertex_normals(model, i),
                                     model.mesh_face[fa:fa + fn], cell)
        if len(tri) == 0 or len(pos) > nn:  # too small to keep a triangle, or odd buffers
            continue
        out.mesh_vert[va:va + len(pos)] = pos
        out.mesh_normal[na:na + len(nrm)] = nrm
        out.mesh_face[fa:fa + len(tri)] = tri
        out.mesh_facenormal[fa:fa + len(tri)] = tri  # normal slot k belongs to cluster k
        out.mesh_facenum[i] = len(tri)
    return out


class SceneRenderer:
    """Frames of a live simulation from one camera, drawn from a (simplified) model copy.

    Args:
        model: the simulated ``MjModel`` (read, never changed).
        size: square frame side in pixels.
        camera: a camera name of ``model``.
        cell: mesh decimation cell in metres; ``0`` draws the original meshes.
        restyle: called once with the render copy to change how it looks (colours,
            transparency, hidden markers): only the copy is affected.

    Rendering is the fast kind (``envs.rendering``): no multisampling, shadows or reflections,
    one GL context for the renderer's life.
    """

    def __init__(self, model, size: int, camera: str, cell: float = 0.0,
                 restyle: Callable | None = None) -> None:
        import mujoco

        from envs.rendering import disable_msaa, fast_scene_flags

        self._mj = mujoco
        self.model = simplified_copy(model, cell) if cell > 0 else copy.deepcopy(model)
        if restyle is not None:
            restyle(self.model)
        disable_msaa(self.model)
        vis = self.model.vis.global_
        vis.offwidth, vis.offheight = max(vis.offwidth, size), max(vis.offheight, size)
        self.camera = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if self.camera < 0:
            raise ValueError(f"no camera named {camera!r} in the model")
        self.data = mujoco.MjData(self.model)
        self._renderer = mujoco.Renderer(self.model, size, size)
        fast_scene_flags(self._renderer.scene)
        self._option = mujoco.MjvOption()
        # free the GL context before the interpreter tears EGL down, even if never closed
        self._finalizer = weakref.finalize(self, self._renderer.close)

    @property
    def faces(self) -> int:
        """Mesh triangles drawn per frame (at most: culled geoms are not drawn)."""
        return int(self.model.mesh_facenum.sum())

    def render(self, data) -> np.ndarray:
        """The frame of ``data`` (the live simulation's ``MjData``): ``uint8 (size, size, 3)``."""
        mj, d = self._mj, self.data
        d.qpos[:] = data.qpos
        d.mocap_pos[:] = data.mocap_pos
        d.mocap_quat[:] = data.mocap_quat
        mj.mj_kinematics(self.model, d)
        mj.mj_comPos(self.model, d)
        mj.mj_camlight(self.model, d)
        self._renderer.update_scene(d, camera=self.camera, scene_option=self._option)
        return self._renderer.render()

    def close(self) -> None:
        self._finalizer()  # closes the renderer once
