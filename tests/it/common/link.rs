//! A TCP link between one machine and a server that the test can cut as a
//! network partition does: while cut, nothing gets through either way and
//! nothing is refused either, so the client only learns of it by timing
//! out. Connections that lived through a cut are dropped when it is mended
//! (their peers gave up on them); new ones go through.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Link {
    pub port: u16,
    cut: Arc<AtomicBool>,
    /// Bumped at each mend: a connection from an older epoch is dead.
    epoch: Arc<AtomicU64>,
}

impl Link {
    pub fn start(target: u16) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(AtomicU64::new(0));
        let (cut2, epoch2) = (cut.clone(), epoch.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (cut, epoch) = (cut2.clone(), epoch2.clone());
                std::thread::spawn(move || {
                    let born = epoch.load(Ordering::SeqCst);
                    // A connection made while cut waits for the mend.
                    while cut.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let born = born.max(epoch.load(Ordering::SeqCst));
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                        return;
                    };
                    let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let (cut3, epoch3) = (cut.clone(), epoch.clone());
                    std::thread::spawn(move || pipe(c, s, &cut3, &epoch3, born));
                    pipe(server, client, &cut, &epoch, born);
                });
            }
        });
        Link { port, cut, epoch }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    pub fn mend(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, cut: &AtomicBool, epoch: &AtomicU64, born: u64) {
    from.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = [0u8; 16384];
    loop {
        if epoch.load(Ordering::SeqCst) != born {
            break;
        }
        if cut.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            // Bytes that arrived as the link was cut are lost, as packets
            // in flight are; the connection dies at the mend anyway.
            Ok(_) if cut.load(Ordering::SeqCst) => {}
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
