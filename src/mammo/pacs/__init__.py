"""DICOM out: results as DICOM objects (SR, heatmap Secondary Capture and Segmentation) and mammo as a DICOM node (`mammo listen`)."""
