"""``PrecisionFlows``: precision="int8" and precision="auto" for any plugin, written once against its hooks.

The plugin contract (``backends.base.BackendPlugin``) declares the hooks (``quantize``, ``precision_facts``,
``precision_candidates``, ``build_candidate``, ``input_shape``, ``timing_session``), accepts the options
(``precision_option_types``) and calls ``check_precision_options``, ``precision_plan`` and ``finish_precision``;
this mixin, one layer up because the flows need the calibration data and the report, implements those three.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo_adapters.quantize.auto import check_auto_options, check_tolerance_option, choose_precision
from yolo_adapters.quantize.plan import int8_plan, with_auto_key, with_facts

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin, ExportPlan

    _Plugin = BackendPlugin
else:  # a mixin: quantize sits above backends.base and imports nothing of it at run time
    _Plugin = object


class PrecisionFlows(_Plugin):
    """Mix in before ``BackendPlugin`` (``class MyPlugin(PrecisionFlows, BackendPlugin)``) in a plugin whose
    ``precisions`` list "int8" and/or "auto"; both flows then come from here.

    The plugin implements ``quantize`` (usually its engine's ``quantize.int8.Quantizer().run``) and
    ``quantizer_version``, and ends ``export_plan`` with ``return self.precision_plan(plan, options, device)``; for
    "auto" it lists ``auto_candidates`` and may override ``precision_candidates``, ``build_candidate``,
    ``input_shape``, ``timing_session`` (with ``timing_record``) and ``precision_facts``.
    """

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
        if plan.precision == "int8":
            return self.quantize(artifact, plan)
        if plan.precision == "auto":
            return choose_precision(artifact, plan, self)
        return artifact
