"""What training raises when a loss stops being a number."""

from __future__ import annotations


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; raised before the optimiser step that would apply it.

    ``whole_step``: the saved ``checkpoint`` is the state after the previous step
    (graph-replayed steps restore it). Eagerly (False) it is the state when the loss
    was found, before its update; an update of the same step that came before it (GTP:
    the critic's, when an actor loss fails) is in it, as the message says.
    """

    def __init__(
        self,
        loss_name: str,
        value: float,
        step: int | None = None,
        checkpoint: str | None = None,
        whole_step: bool = True,
    ):
        self.loss_name, self.value, self.step, self.checkpoint = loss_name, value, step, checkpoint
        where = f" at gradient step {step}" if step is not None else ""
        saved = ""
        if checkpoint and whole_step:
            saved = f"; the last good state (after step {step - 1}) was saved to {checkpoint}"
        elif checkpoint:
            saved = (
                f"; the state before {loss_name}'s update was saved to {checkpoint} (updates of step {step} "
                "made before it are in it)"
            )
        super().__init__(f"{loss_name} became {value}{where}; training stopped{saved}")


__all__ = ["NonFiniteLossError"]
