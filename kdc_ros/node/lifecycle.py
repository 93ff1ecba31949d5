"""The kdc node as a managed (lifecycle) node, for robot stacks that bring their nodes up in order:

  configure   loads the model and makes the publishers (a bad model or parameter: FAILURE, logged)
  activate    subscribes to the cameras and starts the inference worker and /diagnostics
  deactivate  unsubscribes and stops the worker (the model stays loaded: activate is instant)
  cleanup     frees the model (and its device memory) and the publishers

Parameters are declared when the node is built, as for KdcNode, and read at configure. Started by
`kdc_lifecycle_node` (or launch_ros' LifecycleNode); `ros2 lifecycle set /kdc configure`, then
`activate`.
"""
from __future__ import annotations

from typing import Callable

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from . import params
from .kdc_node import KdcRuntime, spin_node


class KdcLifecycleNode(KdcRuntime, LifecycleNode):
    """The kdc node, idle until configured and activated (KdcRuntime says what it does)."""

    def __init__(self, predictor=None, *, defaults: dict | None = None,
                 on_frame: Callable[[str, dict], None] | None = None, **node_kwargs) -> None:
        super().__init__(params.NODE_NAME, **node_kwargs)
        self._declare(defaults, on_frame)
        self._given_predictor = predictor

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure(self._given_predictor)
        except ValueError as err:  # a missing or corrupt model, a bad parameter: one line, stay unconfigured
            self.get_logger().error(f"cannot configure: {err}")
            self._cleanup()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._activate()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._deactivate()
        super().destroy_node()


def main(args=None) -> int:
    """Entry point of `kdc_lifecycle_node`; exit status 1 when a parameter is refused at start."""
    return spin_node(KdcLifecycleNode, args)
