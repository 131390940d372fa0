use openh264::decoder::{DecodeOptions, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
fn main() {
    let data = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    // split at AUD start codes
    let mut starts = vec![];
    let mut i = 0;
    while i + 4 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 && (data[i + 3] & 0x1f) == 9 {
            let s = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            starts.push(s);
        }
        i += 1;
    }
    starts.push(data.len());
    let mut dec = Decoder::with_api_config(openh264::OpenH264API::from_source(), DecoderConfig::new().flush_after_decode(Flush::NoFlush)).unwrap();
    let mut n = 0;
    let t = std::time::Instant::now();
    let out = |y: &dyn YUVSource, n: &mut usize| {
        let (w, h) = y.dimensions();
        let (sy, su, sv) = y.strides();
        let mut buf = Vec::new();
        for r in 0..h { buf.extend_from_slice(&y.y()[r * sy..r * sy + w]); }
        for r in 0..h / 2 { buf.extend_from_slice(&y.u()[r * su..r * su + w / 2]); }
        for r in 0..h / 2 { buf.extend_from_slice(&y.v()[r * sv..r * sv + w / 2]); }
        {use std::io::Write; std::io::stdout().write_all(&buf).unwrap();}
        *n += 1;
    };
    for w in starts.windows(2) {
        let au = &data[w[0]..w[1]];
        if let Some(p) = dec.decode_with_options(au, DecodeOptions::new().flush_after_decode(Flush::NoFlush)).unwrap() {
            out(&p, &mut n);
        }
    }
    for p in dec.flush_remaining().unwrap() { out(&p, &mut n); }
    eprintln!("{} frames in {:?}", n, t.elapsed());
}
