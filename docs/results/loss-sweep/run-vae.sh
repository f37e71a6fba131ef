#!/usr/bin/env bash
# The loss sweep grown by the VAE kind: pixel and the AE kind's three best losses (gamma 1e-3
# on the calibrated scale, the quick preset's); the AE units are finished and not retrained.
set -euo pipefail
# (run from a checkout of the commit below, in its virtual environment)
percae reproduce lunarlander --preset quick --root ll-quick \
  --out sweep --no-progress \
  --models 'AE,P.AE,P.AE[alexnet-random:relu3],P.AE[alexnet-random:relu4],P.AE[efficientnet-lite0:stage5],AE[ssim],AE[ms-ssim],AE[lap1],P.AE[alexnet-random:relu1],P.AE[alexnet-random:relu5],P.AE[efficientnet-lite0:stage1],P.AE[efficientnet-lite0:stage3],P.AE[efficientnet-lite0:stage4],P.AE[efficientnet-lite1:stage5],P.AE[alexnet-random:relu1+relu2+relu3],VAE,P.VAE[alexnet-random:relu3],P.VAE[alexnet-random:relu4],P.VAE[efficientnet-lite0:stage5]'
