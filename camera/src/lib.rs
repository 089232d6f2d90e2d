//! veil-camera: where frames come from (files, test pattern; V4L2 lands with the camera pipeline).
