"""The usual PyTorch definitions of the CIFAR ResNets and MobileNetV2, the ones whose module
names ``load_torch_state_dict`` maps onto fastconv's models.

They let a PyTorch user train a network that fastconv runs afterwards, and they are the
oracle and the peer that fastconv's tests and benchmarks compare with. Importing this
module needs PyTorch; nothing else in fastconv does::

    from fastconv.nn import ResNet
    from fastconv.nn.torch_models import TorchResNet
    theirs = TorchResNet(20)                       # train it in PyTorch, then
    ours = ResNet(20).load_torch_state_dict(theirs.state_dict())
"""
import torch
import torch.nn.functional as F
from torch import nn

from .models import MobileNetV2

__all__ = ["TorchResNet", "TorchMobileNetV2"]


class TorchBasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a shortcut: option A subsamples by 2 and pads
    channels with zeros, option B projects with a 1x1 convolution + BatchNorm."""

    def __init__(self, planes_in, planes, stride, option):
        super().__init__()
        self.conv1 = nn.Conv2d(planes_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        changes = stride != 1 or planes_in != planes
        self.subsample = changes and option == "A"
        self.pad = planes // 4
        self.shortcut = nn.Sequential()
        if changes and option == "B":
            self.shortcut = nn.Sequential(nn.Conv2d(planes_in, planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.subsample:
            side = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        else:
            side = self.shortcut(x)
        return F.relu(out + side)


class TorchResNet(nn.Module):
    """He et al.'s CIFAR ResNet of `depth` = 6n + 2 layers (module names conv1, bn1,
    layer{1,2,3}.{i}.conv1/bn1/conv2/bn2[/shortcut.0/shortcut.1], linear)."""

    def __init__(self, depth=20, shortcut="A", num_classes=10, in_channels=3):
        super().__init__()
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes_in, stages = 16, []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(blocks_per_stage):
                blocks.append(TorchBasicBlock(planes_in, planes, stride if i == 0 else 1,
                                              shortcut))
                planes_in = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class TorchInvertedResidual(nn.Module):
    """1x1 expansion, 3x3 depthwise, 1x1 projection, each with BatchNorm; a shortcut when
    the stride is 1 (a 1x1 convolution + BatchNorm when the channels change)."""

    def __init__(self, cin, cout, expansion, stride):
        super().__init__()
        planes = expansion * cin
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride == 1 and cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


class TorchMobileNetV2(nn.Module):
    """MobileNetV2 for 32x32 inputs (module names conv1, bn1, layers.{i}.*, conv2, bn2,
    linear), with fastconv's block table."""

    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        blocks, cin = [], 32
        for expansion, cout, repeats, stride in MobileNetV2.BLOCKS:
            for i in range(repeats):
                blocks.append(TorchInvertedResidual(cin, cout, expansion, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.conv2 = nn.Conv2d(cin, 1280, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.linear = nn.Linear(1280, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(self.layers(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))
