"""The built-in ``wm/`` ids and their Gymnasium registration, done when ``envs`` is imported.

Each id's entry point is a string (``envs.registry:make_reacher_v0``), so registering loads
nothing heavy: MuJoCo, dm_control and the env modules load when an env is made. After
``import envs``, ``gym.make("wm/reacher-v0")`` works, and so does
``gym.make("envs:wm/reacher-v0")`` without importing anything first.
"""

from __future__ import annotations

__all__ = ["WM_ENV_IDS", "entry_point_name", "register_envs"]

WM_ENV_IDS: tuple[str, ...] = ("wm/reacher-v0", "wm/point_mass-v0", "wm/gym-reacher-v5",
                               "wm/gym-inverted_pendulum-v5", "wm/cube-single-v0")


def entry_point_name(env_id: str) -> str:
    """The name of the factory of ``env_id`` in ``envs.registry`` (``make_reacher_v0``)."""
    return "make_" + env_id.split("/", 1)[1].replace("-", "_")


def register_envs() -> None:
    """Register every ``wm/`` id with Gymnasium (idempotent)."""
    import gymnasium as gym

    for env_id in WM_ENV_IDS:
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"envs.registry:{entry_point_name(env_id)}")
