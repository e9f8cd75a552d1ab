"""``PrecisionFlows``: precision="int8" and precision="auto" for any plugin, written once against its hooks.

The plugin contract (``backends.base.BackendPlugin``) declares the hooks (``quantize``, ``quantizer_version``,
``precision_facts``, ``precision_candidates``, ``build_candidate``, ``input_shape``, ``timing_session``), accepts the
options (``precision_option_types``) and calls ``check_precision_options``, ``precision_plan`` and
``finish_precision``; this mixin, one layer up because the flows need the calibration data and the report,
implements those three, and ``run_precision`` for the plugin's ``load``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo_adapters.quantize.auto import check_auto_options, check_tolerance_option, choose_precision
from yolo_adapters.quantize.choice import chosen_precision
from yolo_adapters.quantize.plan import int8_plan, plan_settings, with_auto_key, with_facts

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin, ExportPlan

    _Plugin = BackendPlugin
else:  # a mixin: the engine packages import quantize, so quantize imports nothing of backends at run time
    _Plugin = object

#: What the mixin implements of the contract; BackendPlugin's own versions refuse "int8" and "auto".
_FLOWS = ("check_precision_options", "precision_plan", "finish_precision")
#: The precisions calibrated on the user's images (``backends.base.CALIBRATED_PRECISIONS``).
_CALIBRATED = ("int8", "auto")


class PrecisionFlows(_Plugin):
    """Mix in before ``BackendPlugin`` (``class MyPlugin(PrecisionFlows, BackendPlugin)``) in a plugin whose
    ``precisions`` list "int8" and/or "auto"; both flows then come from here (listed after it, the class is refused).

    The plugin implements ``quantize`` (usually its engine's ``quantize.int8.Quantizer().run``) and
    ``quantizer_version``, ends ``export_plan`` with ``return self.precision_plan(plan, options, device)``, and in
    ``load`` runs the model at ``run_precision(artifact, options)``; for "auto" it lists ``auto_candidates`` and may
    override ``precision_candidates``, ``build_candidate``, ``input_shape``, ``timing_session`` (with
    ``timing_record``) and ``precision_facts``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse ``class P(BackendPlugin, PrecisionFlows)``: BackendPlugin's refusals of "int8" and "auto" would
        come first in the MRO and silently win over the flows."""
        super().__init_subclass__(**kwargs)
        for name in _FLOWS:
            owner = next(klass for klass in cls.__mro__ if name in vars(klass))
            if not issubclass(owner, PrecisionFlows):
                raise TypeError(
                    f"{cls.__name__}: list PrecisionFlows before {owner.__name__} among the bases "
                    f"(class {cls.__name__}(PrecisionFlows, {owner.__name__})), else {owner.__name__}.{name} wins."
                )

    def check_precision_options(self, checked: Mapping[str, Any]) -> None:
        check_tolerance_option(checked)  # now, not after an export

    def precision_plan(self, plan: ExportPlan, options: Mapping[str, Any], device: str) -> ExportPlan:
        """FP32 export for both; the INT8 plan (calibration content, the plugin's ``precision_facts`` in the key),
        and for "auto" the tolerances, checked before any export."""
        if plan.precision == "int8":
            return with_facts(int8_plan(plan, options, self), self.precision_facts("int8", device, options))
        if plan.precision == "auto":
            tolerance = check_auto_options(options, ", ".join(repr(p) for p in self.auto_candidates))
            facts = {"device": device, **self.precision_facts("auto", device, options)}
            return with_auto_key(with_facts(int8_plan(plan, options, self), facts), tolerance)
        return plan

    def finish_precision(self, artifact: Path, plan: ExportPlan) -> Path:
        if plan.precision in _CALIBRATED and plan_settings(plan)["calibration"] is None:
            raise NotImplementedError(  # else the flow would fail later, saying the calibration images are missing
                f"The {self.name!r} backend's export_plan must end with "
                "`return self.precision_plan(plan, options, device)` for precision={plan.precision!r}."
            )
        if plan.precision == "int8":
            return self.quantize(artifact, plan)
        if plan.precision == "auto":
            return choose_precision(artifact, plan, self)
        return artifact

    def run_precision(self, artifact: str | Path, options: Mapping[str, Any]) -> str:
        """The precision ``load`` runs ``artifact`` at: the ``precision`` option (FP32 by default), and for "auto"
        the one its conversion chose (``precision_choice.json`` beside it, one of ``auto_candidates``; a model
        given as is runs as FP32)."""
        precision = str(options.get("precision") or "fp32")
        if precision == "auto":
            return chosen_precision(artifact, self.auto_candidates)
        return precision
