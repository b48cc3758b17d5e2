"""What a user would do without slimtune, fitted in every job beside the students: a linear
TF-IDF model (`linear`); the teacher quantized and a small model fine-tuned directly are
exported by the job itself."""
