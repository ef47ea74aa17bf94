"""Adaptive Bias Networks: the layers, models, data, training and analysis behind the book."""

from abn.gates import record_gates
from abn.layers import DynamicModulatedConv2d, DynamicMultiBiasLinear
from abn.models import ResNet, build_model, count_parameters, resnet_dmb, resnet_s

__all__ = ["DynamicModulatedConv2d", "DynamicMultiBiasLinear", "ResNet", "build_model",
           "count_parameters", "record_gates", "resnet_dmb", "resnet_s"]
__version__ = "0.1.0"
