"""Images in and out: decoding, preprocessing, overlays, image folders, MVTec, synthetic parts."""
