"""Training-time dropout schedules: standard, early and late dropout, stochastic depth.

:func:`drop_schedule` gives the drop rate of every optimiser step ("Dropout Reduces
Underfitting", Liu et al., ICML 2023); :class:`DropoutScheduler` writes it into a model.
"""

from bayesdrop.schedules._drop_schedule import drop_schedule
from bayesdrop.schedules._scheduler import DropoutScheduler

__all__ = ["DropoutScheduler", "drop_schedule"]
