"""Run summaries: ~1 Hz samples of a simulated run and a PNG of its key signals (matplotlib)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.vehicle.state import VehicleState


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    speed_kmh: float
    soc_pct: float
    pack_v: float
    pack_a: float
    cell_v_min: float
    cell_v_max: float
    cell_t_min: float
    cell_t_max: float
    motor_t: float
    inverter_t: float


class RunRecorder:
    """Keeps one summary per ``period_s`` of simulated time; cheap enough to call every step."""

    def __init__(self, period_s: float = 1.0) -> None:
        self.period_s = period_s
        self.samples: list[Sample] = []
        self._last_slot = -1

    def record(self, state: VehicleState) -> None:
        slot = int(state.t / self.period_s + 1e-6)
        if slot <= self._last_slot:
            return
        self._last_slot = slot
        cv = state.cell_voltages_v
        ct = state.cell_temps_c
        self.samples.append(Sample(
            state.t, state.speed_kmh, state.soc_pct, state.pack_voltage_v, state.pack_current_a,
            float(cv.min()) if cv.size else 0.0, float(cv.max()) if cv.size else 0.0,
            float(ct.min()) if ct.size else 0.0, float(ct.max()) if ct.size else 0.0,
            max((m.motor_temp_c for m in state.motors), default=0.0),
            max((m.inverter_temp_c for m in state.motors), default=0.0)))

    def column(self, name: str) -> np.ndarray:
        """One recorded quantity as an array (``t``, ``speed_kmh``, ``soc_pct`` ...)."""
        return np.array([getattr(s, name) for s in self.samples], dtype=np.float64)

    def save_png(self, path: str | Path) -> None:
        """Speed, SOC, pack V/I, cell-voltage spread and temperatures over the run."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = self.column("t") / 60.0
        fig, ax = plt.subplots(5, 1, figsize=(10, 12), sharex=True)
        ax[0].plot(t, self.column("speed_kmh"), lw=0.8)
        ax[0].set_ylabel("speed km/h")
        ax[1].plot(t, self.column("soc_pct"), lw=0.8, color="tab:green")
        ax[1].set_ylabel("SOC %")
        ax[2].plot(t, self.column("pack_v"), lw=0.8, color="tab:blue")
        ax[2].set_ylabel("pack V")
        ax2 = ax[2].twinx()
        ax2.plot(t, self.column("pack_a"), lw=0.5, color="tab:red")
        ax2.set_ylabel("pack A (+ discharge)")
        ax[3].plot(t, self.column("cell_v_min"), lw=0.8, label="cell min")
        ax[3].plot(t, self.column("cell_v_max"), lw=0.8, label="cell max")
        ax[3].set_ylabel("cell V")
        ax[3].legend(loc="best", fontsize=8)
        for name, label in (("cell_t_min", "cell min"), ("cell_t_max", "cell max"),
                            ("motor_t", "motor"), ("inverter_t", "inverter")):
            ax[4].plot(t, self.column(name), lw=0.8, label=label)
        ax[4].set_ylabel("temperature °C")
        ax[4].set_xlabel("time min")
        ax[4].legend(loc="best", fontsize=8)
        for a in ax:
            a.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(str(path), dpi=90)
        plt.close(fig)
