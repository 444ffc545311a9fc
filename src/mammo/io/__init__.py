"""File I/O at the edges: DICOM reads, image reads and 16-bit PNG writes, atomic writes."""
