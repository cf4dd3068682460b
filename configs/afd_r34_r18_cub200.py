# AFD for transfer learning (paper Table 3) on CUB-200-2011: ImageNet
# ResNet-34 teacher -> ResNet-18 student from scratch, beta 1000, no KD, L2T's
# protocol (see _base_/afd_transfer_r34_r18.py). Paper top-1: 68.29.
_base_ = [
    './_base_/datasets/cub200_bs64.py',
    './_base_/afd_transfer_r34_r18.py',
]

model = dict(student=dict(head=dict(num_classes=200)))
