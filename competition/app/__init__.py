"""`make app`: a local web page that tags any recording with a trained run or a submission blend,
shows its log-mel spectrogram and which part of the clip the answer comes from. It tags through
`competition.submit.predict.Tagger`, the same code as `make predict`.

    server.py     the HTTP server: the page, the tagging endpoint, the upload limits and folder
    page.py       the page (HTML and JavaScript)
    answer.py     one tagging as the JSON the page draws
    images.py     the spectrogram as a PNG
    serve.py      loading the model once and serving until stopped (`python -m competition app`)
"""
